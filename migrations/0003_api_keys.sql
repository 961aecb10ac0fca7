-- API keys of managed applications, and the change feed that keeps every replica's in-memory copy of
-- keys, applications and resolved flags current (LISTEN gatehouse_access).

CREATE TABLE api_keys (
    id             uuid PRIMARY KEY,
    -- The public part of the key (`gatehouse_<key_id>_…`): shown in lists, used in paths and audit rows.
    key_id         text NOT NULL UNIQUE,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    -- SHA-256 of the whole key; the secret itself is never stored.
    secret_hash    bytea NOT NULL CHECK (length(secret_hash) = 32),
    name           text,
    scopes         text[] NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    -- The key this one replaced by rotation.
    rotated_from   text,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Written in batches by each replica, never per request; monotonic.
    last_used_at   timestamptz
);
CREATE INDEX api_keys_application_id_idx ON api_keys (application_id);

-- Payloads: `key:<key_id>`, `app:<uuid>`, `tenant:<name>`, `plan:<uuid>`. A replica reloads what a
-- payload names. NOTIFY is sent at commit and de-duplicated within a transaction.
CREATE FUNCTION access_notify(payload text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('gatehouse_access', payload)
$$;

CREATE FUNCTION api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM access_notify('key:' || coalesce(NEW.key_id, OLD.key_id));
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_inserted_or_deleted AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_changed();
-- last_used_at alone is bookkeeping, not a change any replica must see.
CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN ((OLD.scopes, OLD.expires_at, OLD.revoked_at, OLD.application_id, OLD.secret_hash)
          IS DISTINCT FROM (NEW.scopes, NEW.expires_at, NEW.revoked_at, NEW.application_id, NEW.secret_hash))
    EXECUTE FUNCTION api_keys_changed();

CREATE FUNCTION applications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM access_notify('app:' || coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER applications_inserted_or_deleted AFTER INSERT OR DELETE ON applications
    FOR EACH ROW EXECUTE FUNCTION applications_changed();
CREATE TRIGGER applications_updated AFTER UPDATE ON applications FOR EACH ROW
    WHEN ((OLD.name, OLD.status, OLD.scopes) IS DISTINCT FROM (NEW.name, NEW.status, NEW.scopes))
    EXECUTE FUNCTION applications_changed();

CREATE FUNCTION tenants_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM access_notify('tenant:' || coalesce(NEW.name, OLD.name));
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_inserted_or_deleted AFTER INSERT OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_changed();
CREATE TRIGGER tenants_updated AFTER UPDATE ON tenants FOR EACH ROW
    WHEN ((OLD.name, OLD.status, OLD.plan_id, OLD.applications)
          IS DISTINCT FROM (NEW.name, NEW.status, NEW.plan_id, NEW.applications))
    EXECUTE FUNCTION tenants_changed();

-- Statement-level: a bulk apply sends one notification per tenant, not one per flag.
CREATE FUNCTION tenant_flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM access_notify('tenant:' || t.name)
           FROM tenants t WHERE t.id IN (SELECT DISTINCT tenant_id FROM new_rows);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM access_notify('tenant:' || t.name)
           FROM tenants t WHERE t.id IN (SELECT DISTINCT tenant_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tenant_flags_access_inserted AFTER INSERT ON tenant_flags REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_flags_changed();
CREATE TRIGGER tenant_flags_access_updated AFTER UPDATE ON tenant_flags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_flags_changed();
CREATE TRIGGER tenant_flags_access_deleted AFTER DELETE ON tenant_flags REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_flags_changed();

CREATE FUNCTION plans_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM access_notify('plan:' || coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER plans_updated AFTER UPDATE ON plans FOR EACH ROW
    WHEN (OLD.flags IS DISTINCT FROM NEW.flags)
    EXECUTE FUNCTION plans_changed();
