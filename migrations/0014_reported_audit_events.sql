-- Audit events reported by applications (issue 13.1, API-LOG) live in the one audit log beside the
-- control plane's own rows, and auditors export it (13.3, FR-LOG-002).

-- Who reported a row (the application's name; NULL for the control plane's own rows) and the
-- application's id for the event. The actor of a reported row is whoever the application names: a
-- kind of its own, `external`.
ALTER TABLE audit_log ADD COLUMN application text, ADD COLUMN event_id text;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('user', 'operator', 'auditor', 'system', 'application', 'anonymous', 'external'));

-- A reported event is stored once per (application, event id): a retry is acknowledged, not stored
-- again. Kept beside the log rather than as a unique index on it, so that the log can later be
-- partitioned by time without the partition key in this key.
CREATE TABLE audit_reported_ids (
    application text NOT NULL,
    event_id    text NOT NULL,
    PRIMARY KEY (application, event_id)
);

-- Exports page through the log in time order; the BRIN index finds ranges but cannot order them.
CREATE INDEX audit_log_time_id_idx ON audit_log (occurred_at, id);
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant, occurred_at, id) WHERE tenant IS NOT NULL;
