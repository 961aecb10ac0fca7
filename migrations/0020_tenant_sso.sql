-- Tenant SSO (issue 14.2, FR-AUTH-003): a tenant's own OpenID provider, declared in Git (the
-- tenant's `sso` block) or set by its owner through the API; draft → verified (discovery checked)
-- → active (after one test sign-in).

CREATE TABLE tenant_idps (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer         text NOT NULL,
    client_id      text NOT NULL,
    -- The client secret: sealed with the key ring (as TOTP seeds are) when set through the API, or
    -- the environment variable that holds it when declared in Git (a secret never lives in Git).
    secret_key_id  text,
    secret_sealed  bytea,
    secret_env     text,
    managed_by     text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('git', 'api')),
    domains        text[] NOT NULL,
    -- Passwords refused for the tenant's users once active.
    mandatory      boolean NOT NULL DEFAULT false,
    -- Just-in-time creation of unknown users with this role; NULL: unknown emails are refused.
    jit_role       text CHECK (jit_role IN ('admin', 'user')),
    state          text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'verified', 'active')),
    -- What verification found: the provider's endpoints, or the problems in words.
    metadata       jsonb,
    verified_at    timestamptz,
    tested_at      timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_idps_active_is_tested CHECK (state <> 'active' OR tested_at >= verified_at),
    CONSTRAINT tenant_idps_has_a_secret CHECK (secret_sealed IS NOT NULL OR secret_env IS NOT NULL)
);

-- An email domain is served by one tenant's provider: the login page routes by it.
CREATE TABLE tenant_idp_domains (
    domain    text PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenant_idps (tenant_id) ON DELETE CASCADE
);
CREATE INDEX tenant_idp_domains_tenant_id_idx ON tenant_idp_domains (tenant_id);

-- A tenant's `sso` block in Git is its provider, however the tenant row is written (apply, the
-- reconciler). A change of any setting returns it to draft; the same settings keep its state.
CREATE FUNCTION tenants_sync_idp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted_domains text[];
    unchanged boolean;
BEGIN
    IF NEW.sso IS NULL THEN
        DELETE FROM tenant_idps WHERE tenant_id = NEW.id AND managed_by = 'git';
        RETURN NULL;
    END IF;
    wanted_domains := ARRAY(SELECT DISTINCT lower(d) FROM jsonb_array_elements_text(coalesce(NEW.sso->'domains', '[]'::jsonb)) d ORDER BY 1);
    SELECT (issuer, client_id, secret_env, domains, mandatory, jit_role, managed_by)
           IS NOT DISTINCT FROM (NEW.sso->>'issuer', NEW.sso->>'clientId', NEW.sso->'clientSecretRef'->>'env', wanted_domains,
                                 coalesce((NEW.sso->>'mandatory')::boolean, false), NEW.sso->>'jitRole', 'git')
      INTO unchanged FROM tenant_idps WHERE tenant_id = NEW.id;
    IF unchanged THEN
        RETURN NULL;
    END IF;
    INSERT INTO tenant_idps (tenant_id, issuer, client_id, secret_env, domains, mandatory, jit_role, managed_by)
    VALUES (NEW.id, NEW.sso->>'issuer', NEW.sso->>'clientId', NEW.sso->'clientSecretRef'->>'env', wanted_domains,
            coalesce((NEW.sso->>'mandatory')::boolean, false), NEW.sso->>'jitRole', 'git')
    ON CONFLICT (tenant_id) DO UPDATE SET
        issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id, secret_env = EXCLUDED.secret_env,
        secret_key_id = NULL, secret_sealed = NULL, domains = EXCLUDED.domains, mandatory = EXCLUDED.mandatory,
        jit_role = EXCLUDED.jit_role, managed_by = 'git', state = 'draft', metadata = NULL, verified_at = NULL,
        tested_at = NULL, updated_at = now();
    DELETE FROM tenant_idp_domains WHERE tenant_id = NEW.id;
    -- A domain another tenant's provider serves stays theirs.
    INSERT INTO tenant_idp_domains (domain, tenant_id) SELECT d, NEW.id FROM unnest(wanted_domains) d
        ON CONFLICT (domain) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_sync_idp AFTER INSERT OR UPDATE OF sso ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_sync_idp();

-- Federated sign-ins under way: the hash of the `state` sent to the provider (single use, ten
-- minutes), with the nonce and the PKCE verifier (sealed) it must come back with.
CREATE TABLE sso_logins (
    state_hash      bytea PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('login', 'test')),
    nonce           text NOT NULL,
    verifier_key_id text NOT NULL,
    verifier_sealed bytea NOT NULL,
    return_to       text NOT NULL,
    started_by      text,
    -- SHA-256 of a random value in a cookie of the browser that started the sign-in: the
    -- callback must come back in that browser (RFC 9700 §4.7, no login CSRF). NULL for the
    -- owner's test, which opens no session.
    browser_hash    bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX sso_logins_expires_at_idx ON sso_logins (expires_at);
