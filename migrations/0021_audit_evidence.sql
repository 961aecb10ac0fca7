-- The audit log's evidence made whole (issue 25.1, 25.2; ADR 0014):
-- * rows hash the time Gatehouse recorded them too (it picks the partition, so the month retention
--   drops a row in): every chain hashes `recorded_at` from the row after its head at this migration,
--   and `verify` reads where from here (moving it either way breaks the rows it moves past);
-- * retention records say how long the log was kept when they were made, and are signed by the
--   checkpoint written in the same transaction as the drop (`retention` in its body).
ALTER TABLE audit_chain_heads ADD COLUMN recorded_hashed_from bigint NOT NULL DEFAULT 1;
UPDATE audit_chain_heads SET recorded_hashed_from = seq + 1;

ALTER TABLE audit_retention ADD COLUMN kept_for_days bigint;
-- Months dropped before this migration: the retention they were kept at least.
UPDATE audit_retention SET kept_for_days = floor(extract(epoch FROM dropped_at - until) / 86400);
ALTER TABLE audit_retention ALTER COLUMN kept_for_days SET NOT NULL;

-- Retention records are evidence: like the log and the checkpoints, never changed or removed.
CREATE FUNCTION audit_retention_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_retention is append-only';
END $$;
CREATE TRIGGER audit_retention_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_retention
    FOR EACH ROW EXECUTE FUNCTION audit_retention_is_append_only();
