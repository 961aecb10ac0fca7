-- Issue 15.4 and 15.7: the history of reconcile passes, and an operator's one-time allowance of a
-- tenant's guarded change (its deletion).

-- One row per pass that changed, reverted or failed something, newest kept (`--history-limit`).
CREATE TABLE sync_passes (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    duration_ms bigint NOT NULL,
    -- interval | webhook | manual | file change | start
    trigger     text NOT NULL,
    -- Synced | Drifted | Error, as the pass left the platform
    state       text NOT NULL,
    -- The commit, or `content:` and a hash of the files
    version     text,
    author      text,
    subject     text,
    created     integer NOT NULL DEFAULT 0,
    updated     integer NOT NULL DEFAULT 0,
    deleted     integer NOT NULL DEFAULT 0,
    healed      integer NOT NULL DEFAULT 0,
    refused     integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    error       text,
    -- Reverted drift of plans and applications: [{resource, field, applied, reverted, changedBy, changedAt}]
    healed_global jsonb NOT NULL DEFAULT '[]'
);

-- What a pass did to each tenant it changed, reverted, refused or failed.
CREATE TABLE sync_pass_tenants (
    pass_id  bigint NOT NULL REFERENCES sync_passes (id) ON DELETE CASCADE,
    tenant   text NOT NULL,
    -- applied | refused | failed | invalid
    outcome  text NOT NULL,
    created  integer NOT NULL DEFAULT 0,
    updated  integer NOT NULL DEFAULT 0,
    deleted  integer NOT NULL DEFAULT 0,
    healed   integer NOT NULL DEFAULT 0,
    -- The first problem of a tenant that was not applied
    problem  text,
    -- [{resource, field, applied, reverted, changedBy, changedAt}]
    drift    jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (pass_id, tenant)
);
CREATE INDEX sync_pass_tenants_tenant_idx ON sync_pass_tenants (tenant, pass_id DESC);

-- A tenant whose guarded change (removing it, or most of its users) the next apply may make, once.
-- Kept here so that an API call on any replica reaches the leader; deleted in the transaction that
-- applies the change.
CREATE TABLE guard_allowances (
    tenant     text PRIMARY KEY,
    allowed_by text NOT NULL,
    allowed_at timestamptz NOT NULL DEFAULT now()
);
