-- Live state of everything the config repository declares, with the three-way bookkeeping on every
-- managed row: managed_by (git | api), applied_hash (hash of the declared fields as Git last applied
-- them), applied_commit, updated_at.

CREATE TABLE plans (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    display_name   text,
    flags          jsonb NOT NULL DEFAULT '{}',
    budget         jsonb,
    managed_by     text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    applied_hash   bytea,
    applied_commit text,
    source_file    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    owner          text NOT NULL,
    status         text NOT NULL CHECK (status IN ('active', 'disabled')),
    scopes         text[] NOT NULL DEFAULT '{}',
    managed_by     text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    applied_hash   bytea,
    applied_commit text,
    source_file    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id                uuid PRIMARY KEY,
    name              text NOT NULL UNIQUE,
    display_name      text NOT NULL,
    plan_id           uuid NOT NULL REFERENCES plans (id),
    status            text NOT NULL CHECK (status IN ('active', 'suspended')),
    budget            jsonb,
    sso               jsonb,
    applications      text[] NOT NULL DEFAULT '{}',
    -- The sync policy Git last declared; prune is needed when the tenant itself leaves Git.
    self_heal         boolean NOT NULL DEFAULT true,
    prune             boolean NOT NULL DEFAULT true,
    managed_by        text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    applied_hash      bytea,
    -- Hash of the tenant's whole declaration (fields, users, flags, policy, file) as last applied.
    applied_tree_hash bytea,
    applied_commit    text,
    source_file       text,
    -- Bumped by the triggers below whenever a declared column of the tenant, its users or its flags
    -- changes outside the reconciler; checked_revision is the value at which the reconciler last
    -- left the tenant converged. Equal values and an equal tree hash let a pass skip the tenant.
    live_revision     bigint NOT NULL DEFAULT 0,
    checked_revision  bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_plan_id_idx ON tenants (plan_id);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          text NOT NULL UNIQUE CHECK (email = lower(email)),
    name           text,
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'user')),
    -- invited until the user sets a credential; active; disabled.
    status         text NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    activated_at   timestamptz,
    managed_by     text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    applied_hash   bytea,
    applied_commit text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant_id_idx ON users (tenant_id);

-- A tenant's overrides of its plan's flag defaults.
CREATE TABLE tenant_flags (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key            text NOT NULL,
    value          jsonb NOT NULL,
    managed_by     text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    applied_hash   bytea,
    applied_commit text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, key)
);

-- Append-only: who did what to which resource, with what outcome.
CREATE TABLE audit_log (
    id          uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    actor_type  text NOT NULL CHECK (actor_type IN ('user', 'operator', 'system', 'application')),
    action      text NOT NULL,
    resource    text NOT NULL,
    tenant      text,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure')),
    metadata    jsonb NOT NULL DEFAULT '{}'
);
-- Append-only and written in time order, so a BRIN index finds time ranges for exports at a
-- fraction of a B-tree's write cost.
CREATE INDEX audit_log_occurred_at_idx ON audit_log USING brin (occurred_at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- The reconciler marks its own transactions with SET LOCAL gatehouse.reconciler = 'on'; every other
-- change to a declared column is a live change that may be drift.
CREATE FUNCTION gatehouse_by_reconciler() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('gatehouse.reconciler', true), '') = 'on'
$$;

CREATE FUNCTION tenants_bump_live_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT gatehouse_by_reconciler()
       AND (NEW.display_name, NEW.plan_id, NEW.status, NEW.budget, NEW.sso, NEW.applications)
           IS DISTINCT FROM (OLD.display_name, OLD.plan_id, OLD.status, OLD.budget, OLD.sso, OLD.applications) THEN
        NEW.live_revision := OLD.live_revision + 1;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_bump_live_revision BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_bump_live_revision();

-- Statement-level, so a bulk change costs one UPDATE of the tenants it touched.
CREATE FUNCTION rows_bump_tenant_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF gatehouse_by_reconciler() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        UPDATE tenants SET live_revision = live_revision + 1 WHERE id IN (SELECT tenant_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE tenants SET live_revision = live_revision + 1 WHERE id IN (SELECT tenant_id FROM old_rows);
    ELSIF TG_TABLE_NAME = 'users' THEN
        UPDATE tenants SET live_revision = live_revision + 1 WHERE id IN (
            SELECT n.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.tenant_id, n.email, n.name, n.role, n.status = 'disabled')
                  IS DISTINCT FROM (o.tenant_id, o.email, o.name, o.role, o.status = 'disabled'));
    ELSE
        UPDATE tenants SET live_revision = live_revision + 1 WHERE id IN (
            SELECT n.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.tenant_id, n.key, n.value) IS DISTINCT FROM (o.tenant_id, o.key, o.value));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_inserted AFTER INSERT ON users REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
CREATE TRIGGER users_updated AFTER UPDATE ON users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
CREATE TRIGGER users_deleted AFTER DELETE ON users REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
CREATE TRIGGER tenant_flags_inserted AFTER INSERT ON tenant_flags REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
CREATE TRIGGER tenant_flags_updated AFTER UPDATE ON tenant_flags REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
CREATE TRIGGER tenant_flags_deleted AFTER DELETE ON tenant_flags REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_bump_tenant_revision();
