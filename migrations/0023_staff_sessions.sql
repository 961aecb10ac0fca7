-- Platform staff signed in in a browser (issue 23.2): the sign-ins under way at the operators'
-- identity provider (single use, ten minutes), and the platform sessions that follow them
-- (absolute lifetime, revocable). Only hashes of the state and of the session's token are kept.
CREATE TABLE staff_logins (
    state_hash      bytea PRIMARY KEY,
    nonce           text        NOT NULL,
    verifier_key_id text        NOT NULL,
    verifier_sealed bytea       NOT NULL,
    browser_hash    bytea       NOT NULL,
    return_to       text        NOT NULL,
    expires_at      timestamptz NOT NULL
);

CREATE TABLE staff_sessions (
    id             uuid PRIMARY KEY,
    token_hash     bytea       NOT NULL UNIQUE,
    issuer         text        NOT NULL,
    subject        text        NOT NULL,
    username       text        NOT NULL,
    display_name   text,
    role           text        NOT NULL CHECK (role IN ('operator', 'auditor')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
