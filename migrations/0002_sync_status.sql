-- What the reconciler last saw, written on every pass and read by the API, so that every replica
-- answers the same. One row for the whole platform, one per tenant that is not simply in sync.

CREATE TABLE sync_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused          boolean NOT NULL DEFAULT false,
    -- Synced | OutOfSync | Drifted | Error | Paused | Unknown (before the first pass)
    state           text NOT NULL DEFAULT 'Unknown',
    source_commit   text,
    synced_commit   text,
    -- The commit whose apply failed: not retried until a new commit or a manual sync.
    failed_commit   text,
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    last_error      text,
    -- Incremented by every manual sync; the leader retries failed commits when it grows.
    sync_requests   bigint NOT NULL DEFAULT 0,
    leader          text,
    counts          jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sync_state DEFAULT VALUES;

CREATE TABLE tenant_sync (
    tenant          text PRIMARY KEY,
    -- OutOfSync | Drifted | Error (Synced tenants have no row)
    state           text NOT NULL,
    source_file     text,
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- [{file, line, column, path, message}] or [{message}]
    errors          jsonb NOT NULL DEFAULT '[]',
    -- [{resource, field, applied, live, reverted}]
    drift           jsonb NOT NULL DEFAULT '[]',
    orphans         jsonb NOT NULL DEFAULT '[]'
);

-- Drift reports name who last changed a resource outside Git, from the audit log.
CREATE INDEX audit_log_resource_idx ON audit_log (resource, occurred_at DESC);

-- Denied requests from callers who proved no identity are audited as `anonymous`.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('user', 'operator', 'system', 'application', 'anonymous'));
