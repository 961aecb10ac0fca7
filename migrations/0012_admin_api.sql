-- Interactive administration (issue 12): the tenant lifecycle beyond active/suspended, reserved
-- names, idempotent creates.

-- Why and when a tenant was suspended, and when a tenant pending deletion is purged. A tenant is
-- pending deletion while purge_after is set (always with status 'suspended', so its sessions end
-- and its keys are refused through the existing triggers and change feed); restore clears both.
ALTER TABLE tenants
    ADD COLUMN suspended_reason text,
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN purge_after      timestamptz,
    ADD CONSTRAINT tenants_pending_deletion_is_suspended CHECK (purge_after IS NULL OR status = 'suspended');
-- Whether Git lets the admin API change what it declares for this tenant (sync.interactiveEdits):
-- such changes show as drift, attributed to their actor, and selfHeal decides their fate.
ALTER TABLE tenants ADD COLUMN interactive_edits boolean NOT NULL DEFAULT false;
CREATE INDEX tenants_purge_after_idx ON tenants (purge_after) WHERE purge_after IS NOT NULL;
-- The tenant list pages by name and searches by name prefix at any size: byte order ("C"), so that a
-- prefix is one range whatever the database's collation.
CREATE INDEX tenants_name_c_idx ON tenants (name COLLATE "C");

-- A purged tenant's name stays reserved, so a new tenant cannot inherit links, mail or audit rows
-- that name the old one.
CREATE TABLE reserved_tenant_names (
    name           text PRIMARY KEY,
    purged_at      timestamptz NOT NULL DEFAULT now(),
    reserved_until timestamptz NOT NULL
);

-- The first answer to a create carrying an Idempotency-Key, kept 24 h. Keyed by who asked (the
-- actor's audit identity) and the key; the request's hash tells a retry from a different request
-- that reuses the key. The row is written in the transaction of the create, so a concurrent retry
-- waits on the primary key and then reads the committed answer.
CREATE TABLE idempotency_keys (
    actor        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Users are paged by email within a tenant, in byte order as tenants are.
CREATE INDEX users_tenant_email_c_idx ON users (tenant_id, email COLLATE "C");
