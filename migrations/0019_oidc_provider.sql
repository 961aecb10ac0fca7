-- Universal login and Gatehouse as the OpenID provider of managed applications (issue 14).

-- An application may sign tenant users in through Gatehouse: its redirect URIs, post-logout
-- redirect URIs and client type, as declared (`spec.oidc`); NULL: not an OIDC client.
ALTER TABLE applications ADD COLUMN oidc jsonb;

-- The secret of a confidential client: SHA-256 of 32 random bytes, shown once when set.
CREATE TABLE oidc_client_secrets (
    application_id uuid PRIMARY KEY REFERENCES applications (id) ON DELETE CASCADE,
    secret_hash    bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- How a session was authenticated (`amr` of RFC 8176: pwd, otp, fed), and, for the sessions of
-- managed applications, the client it was issued to and the browser session it came from.
ALTER TABLE sessions
    ADD COLUMN amr        text[] NOT NULL DEFAULT '{pwd}',
    ADD COLUMN client_id  uuid REFERENCES applications (id) ON DELETE CASCADE,
    ADD COLUMN parent_id  uuid REFERENCES sessions (id) ON DELETE SET NULL,
    -- When the user last proved who they are (`auth_time`): the browser session's sign-in.
    ADD COLUMN auth_time  timestamptz NOT NULL DEFAULT now();
CREATE INDEX sessions_parent_id_idx ON sessions (parent_id) WHERE parent_id IS NOT NULL;

-- However a session ends (sign-out, an end by its user or an admin, RFC 7009, a spent refresh token
-- reused, any trigger), the sessions of the applications it signed in to end with it.
CREATE FUNCTION sessions_end_children() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET revoked_at = NEW.revoked_at, revoked_reason = 'parent_' || coalesce(NEW.revoked_reason, 'ended')
     WHERE parent_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER sessions_end_children AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION sessions_end_children();

-- Single-use authorization codes: the hash of the code, bound to the client, the redirect URI,
-- the PKCE challenge and the nonce; valid for a minute.
CREATE TABLE oidc_codes (
    code_hash      bytea PRIMARY KEY,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    session_id     uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,
    scope          text NOT NULL,
    nonce          text,
    code_challenge text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    -- The session the code was exchanged for: ended if the code is presented again (RFC 6749 §4.1.2).
    issued_session_id uuid REFERENCES sessions (id) ON DELETE SET NULL
);
CREATE INDEX oidc_codes_expires_at_idx ON oidc_codes (expires_at);

-- Signing keys of ID tokens, the private half sealed with the key ring. A key is `next` (published
-- in the JWKS, not yet used), then `current` (signs), then `retired` (published until the tokens it
-- signed have expired), so a client that caches the JWKS always knows the key of a token.
CREATE TABLE oidc_signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL CHECK (alg IN ('RS256', 'EdDSA')),
    state        text NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    public_jwk   jsonb NOT NULL,
    sealing_key  text NOT NULL,
    private_sealed bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz
);
CREATE UNIQUE INDEX oidc_signing_keys_one_current ON oidc_signing_keys (alg) WHERE state = 'current';
CREATE UNIQUE INDEX oidc_signing_keys_one_next ON oidc_signing_keys (alg) WHERE state = 'next';

-- A tenant that stops enabling an application, or an application that is disabled, ends the
-- sessions it holds at once, however the change arrives.
CREATE FUNCTION tenants_end_client_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions s SET revoked_at = now(), revoked_reason = 'application_not_enabled'
      FROM applications a
     WHERE s.tenant_id = NEW.id AND s.client_id = a.id AND s.revoked_at IS NULL
       AND NOT (a.name = ANY (NEW.applications));
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_end_client_sessions AFTER UPDATE OF applications ON tenants
    FOR EACH ROW WHEN (OLD.applications IS DISTINCT FROM NEW.applications)
    EXECUTE FUNCTION tenants_end_client_sessions();

CREATE FUNCTION applications_end_client_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET revoked_at = now(), revoked_reason = 'application_disabled'
     WHERE client_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER applications_end_client_sessions AFTER UPDATE OF status ON applications
    FOR EACH ROW WHEN (NEW.status <> 'active' AND OLD.status = 'active')
    EXECUTE FUNCTION applications_end_client_sessions();
