-- A tamper-evident audit log (issue 13.2): every row has a place in one of 16 hash chains (chosen
-- by its tenant), a sequence number there, the hash of the row before it and its own hash
-- (src/audit/chain.rs). Gatehouse computes them as it writes, holding the chain's head row, and
-- `gatehouse audit verify` recomputes them. Signed checkpoints of the chains' heads are kept here
-- and in a directory of the operator's.

ALTER TABLE audit_log
    ADD COLUMN chain     smallint,
    ADD COLUMN seq       bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash      bytea;
CREATE UNIQUE INDEX audit_log_chain_seq_idx ON audit_log (chain, seq);

-- The last row of each chain: writers lock it, in chain order, for the rest of their transaction.
CREATE TABLE audit_chain_heads (
    chain smallint PRIMARY KEY CHECK (chain BETWEEN 0 AND 15),
    seq   bigint NOT NULL,
    hash  bytea  NOT NULL
);
INSERT INTO audit_chain_heads (chain, seq, hash)
SELECT c, 0, decode(repeat('00', 32), 'hex') FROM generate_series(0, 15) AS c;

-- Rows written before the chains existed have none; `verify` counts them against this record, so a
-- row slipped in among them later is found too.
CREATE TABLE audit_chain_start (
    started_at  timestamptz NOT NULL DEFAULT now(),
    legacy_rows bigint      NOT NULL
);
INSERT INTO audit_chain_start (legacy_rows) SELECT count(*) FROM audit_log;

-- Every new row comes with its place in a chain.
CREATE FUNCTION audit_log_is_chained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.chain IS NULL OR NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL THEN
        RAISE EXCEPTION 'audit rows are written with their place in a hash chain';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chained BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_chained();

-- Signed checkpoints: the heads of every chain at a moment, signed (Ed25519) together with the
-- signature of the checkpoint before, exactly as `body` holds them.
CREATE TABLE audit_checkpoints (
    id         uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    key_id     text        NOT NULL,
    body       text        NOT NULL,
    signature  bytea       NOT NULL
);
CREATE INDEX audit_checkpoints_created_idx ON audit_checkpoints (created_at);
CREATE FUNCTION audit_checkpoints_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END $$;
CREATE TRIGGER audit_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_are_append_only();
