-- Identity runtime: passwords, sessions, single-use tokens (invitations, password resets), lockout
-- and rate-limit counters, TOTP, recovery codes and the email outbox. Secrets are never stored in
-- the clear: passwords as argon2id PHC strings, tokens and recovery codes as SHA-256, TOTP seeds and
-- unsent mail bodies sealed with an AEAD key named by key_id.

CREATE TABLE credentials (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    password_hash text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per sign-in: the "family" of every token pair that refreshes descend from. The current
-- access and refresh tokens are columns; spent refresh tokens move to spent_refresh_tokens.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    access_hash    bytea NOT NULL UNIQUE,
    refresh_hash   bytea NOT NULL UNIQUE,
    -- Until MFA is satisfied the session may only verify a code (mfa_verify) or enrol (mfa_enrol).
    pending        text CHECK (pending IN ('mfa_verify', 'mfa_enrol')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- When the current token pair was issued: the access token expires a TTL after it.
    rotated_at     timestamptz NOT NULL DEFAULT now(),
    -- Last authenticated use, kept to the minute: the idle expiry counts from it.
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ip             text,
    user_agent     text,
    revoked_at     timestamptz,
    revoked_reason text
);
-- Plain (not partial) indexes: a partial one on `revoked_at IS NULL` tempts the planner into a
-- bitmap AND with the token index that reads every live session.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_tenant_id_idx ON sessions (tenant_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE spent_refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spent_refresh_tokens_session_id_idx ON spent_refresh_tokens (session_id);

-- Invitation and password-reset tokens: single use, hashed, with an expiry.
CREATE TABLE user_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX user_tokens_user_id_idx ON user_tokens (user_id, purpose);
-- The mail worker looks for invited users who have no invitation yet.
CREATE INDEX users_invited_idx ON users (id) WHERE status = 'invited';

-- Per-account soft lock, keyed by the email as typed (lower case), known or not, so that a lock
-- looks the same for an account that does not exist.
CREATE TABLE account_lockouts (
    email           text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);

-- Fixed-window request counters (per client IP and route), shared by every replica. Unlogged: a
-- counter needs no WAL, so requests from one address do not queue behind each other's WAL flush on
-- the counter's row; a crash or failover resets the counters, which costs at most one window.
CREATE UNLOGGED TABLE rate_limits (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL
);

CREATE TABLE totp_credentials (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_id         text NOT NULL,
    secret_sealed  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    confirmed_at   timestamptz,
    -- The last 30-second step a code was accepted for: each code is usable once.
    last_used_step bigint NOT NULL DEFAULT 0
);

CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    kind            text NOT NULL,
    -- The rendered message, sealed (it carries a token); cleared once delivered.
    key_id          text,
    body_sealed     bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Revocation on every trigger, in the transaction of the change, however it arrives (API, apply,
-- reconciler, SQL by hand): a role change, a move to another tenant or leaving `active` ends the
-- user's sessions; suspending a tenant ends all of its sessions; deleting a user or tenant deletes
-- them (ON DELETE CASCADE).
CREATE FUNCTION users_end_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions
       SET revoked_at = now(),
           revoked_reason = CASE
               WHEN NEW.status <> 'active' THEN 'user_' || NEW.status
               WHEN NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN 'tenant_changed'
               ELSE 'role_changed' END
     WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER users_end_sessions AFTER UPDATE OF role, status, tenant_id ON users
    FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
          OR (OLD.status = 'active' AND NEW.status <> 'active'))
    EXECUTE FUNCTION users_end_sessions();

CREATE FUNCTION tenants_end_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET revoked_at = now(), revoked_reason = 'tenant_suspended'
     WHERE tenant_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_end_sessions AFTER UPDATE OF status ON tenants
    FOR EACH ROW
    WHEN (NEW.status = 'suspended' AND OLD.status IS DISTINCT FROM 'suspended')
    EXECUTE FUNCTION tenants_end_sessions();

-- Wakes the mail worker: a user may need an invitation, or a message is waiting.
CREATE FUNCTION notify_mail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gatehouse_mail', '');
    RETURN NULL;
END $$;
CREATE TRIGGER users_notify_mail AFTER INSERT OR UPDATE OF status ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_mail();
CREATE TRIGGER email_outbox_notify_mail AFTER INSERT ON email_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_mail();
