-- Tenant SSO (issue 14.2, FR-AUTH-003): a tenant's own OpenID provider, set by its owner through
-- the API; draft → verified (discovery checked) → active (after one test sign-in).

CREATE TABLE tenant_idps (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer         text NOT NULL,
    client_id      text NOT NULL,
    -- The client secret, sealed with the key ring (as TOTP seeds are).
    secret_key_id  text NOT NULL,
    secret_sealed  bytea NOT NULL,
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
    CONSTRAINT tenant_idps_active_is_tested CHECK (state <> 'active' OR tested_at >= verified_at)
);

-- An email domain is served by one tenant's provider: the login page routes by it.
CREATE TABLE tenant_idp_domains (
    domain    text PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenant_idps (tenant_id) ON DELETE CASCADE
);
CREATE INDEX tenant_idp_domains_tenant_id_idx ON tenant_idp_domains (tenant_id);

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
