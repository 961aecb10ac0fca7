-- The audit log in monthly partitions (issue 13.2), so that retention drops whole months: partitioned
-- by `recorded_at`, when Gatehouse wrote the row (never before the row before it in its chain, so
-- that a dropped month is a prefix of every chain), not by `occurred_at`, which an application
-- reports and may be months back.

ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
ALTER TABLE audit_chain_heads ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT 'epoch';

CREATE TABLE audit_log (
    id          uuid        NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    actor_type  text        NOT NULL,
    action      text        NOT NULL,
    resource    text        NOT NULL,
    tenant      text,
    outcome     text        NOT NULL CHECK (outcome IN ('success', 'failure')),
    metadata    jsonb       NOT NULL DEFAULT '{}',
    application text,
    event_id    text,
    chain       smallint,
    seq         bigint,
    prev_hash   bytea,
    hash        bytea,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_actor_type_check
        CHECK (actor_type IN ('user', 'operator', 'auditor', 'system', 'application', 'anonymous', 'external')),
    PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- The partition of each month in [from, to), created if missing.
CREATE FUNCTION audit_log_ensure_partitions(from_time timestamptz, to_time timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month timestamptz := date_trunc('month', from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    WHILE month < to_time LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
            'audit_log_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM'),
            month, (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
        month := (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
    END LOOP;
END $$;

SELECT audit_log_ensure_partitions(
    least(coalesce((SELECT min(occurred_at) FROM audit_log_unpartitioned), now()), now()),
    now() + interval '2 months');

-- Rows so far: recorded when they occurred, kept in order within their chain.
INSERT INTO audit_log (id, occurred_at, actor, actor_type, action, resource, tenant, outcome, metadata, application,
                       event_id, chain, seq, prev_hash, hash, recorded_at)
SELECT id, occurred_at, actor, actor_type, action, resource, tenant, outcome, metadata, application, event_id,
       chain, seq, prev_hash, hash,
       CASE WHEN chain IS NULL THEN occurred_at
            ELSE max(occurred_at) OVER (PARTITION BY chain ORDER BY seq) END
  FROM audit_log_unpartitioned;
UPDATE audit_chain_heads h SET recorded_at = coalesce(
    (SELECT max(recorded_at) FROM audit_log l WHERE l.chain = h.chain), 'epoch');
DROP TABLE audit_log_unpartitioned;

CREATE INDEX audit_log_occurred_at_idx ON audit_log USING brin (occurred_at);
CREATE INDEX audit_log_resource_idx ON audit_log (resource, occurred_at DESC);
CREATE INDEX audit_log_time_id_idx ON audit_log (occurred_at, id);
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant, occurred_at, id) WHERE tenant IS NOT NULL;
-- Not unique: a unique index of a partitioned table must hold the partition key. `verify` finds two
-- rows in one place.
CREATE INDEX audit_log_chain_seq_idx ON audit_log (chain, seq);

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_chained BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_chained();

-- Each month dropped by retention: when, how many rows, and where each chain stood at its last row
-- there (`anchors`: [{chain, seq, hash}]), so that `verify` starts each chain there and tells
-- retention from deletion. `legacy_rows`: rows without a chain (from before migration 0015) it held.
CREATE TABLE audit_retention (
    partition   text PRIMARY KEY,
    until       timestamptz NOT NULL,
    dropped_at  timestamptz NOT NULL DEFAULT now(),
    rows        bigint      NOT NULL,
    legacy_rows bigint      NOT NULL,
    anchors     jsonb       NOT NULL
);
