-- Usage ingest and export (issue 13.4, 13.5; FR-BILL-001..003): the billable events applications
-- report, kept in ingest order, and their totals per tenant, event type and UTC day.

-- One row per accepted event. `seq` is the ingest order a billing system pulls "everything since my
-- last cursor" by. A (tenant, source, id) is counted once: a retry or a duplicate send is
-- acknowledged and not stored again. The spec asks for 35 days of deduplication; the index keeps it
-- for as long as the events are kept, which is stricter (an id reused later is still a duplicate). Events name their tenant by id, with no foreign key, so the
-- billing record of a purged tenant stays exportable by the operators.
CREATE TABLE usage_events (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    application_id uuid        NOT NULL,
    source         text        NOT NULL CHECK (length(source) BETWEEN 1 AND 512),
    event_id       text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 256),
    type           text        NOT NULL CHECK (length(type) BETWEEN 1 AND 256),
    occurred_at    timestamptz NOT NULL,
    quantity       bigint      NOT NULL CHECK (quantity > 0),
    data           jsonb       NOT NULL DEFAULT '{}',
    received_at    timestamptz NOT NULL DEFAULT now(),
    -- The transaction that stored the event. Sequence numbers are taken before commit, so a batch
    -- can commit after a later one: the export pages by (xid, seq) over finished transactions only,
    -- an order in which nothing committed later can land behind a cursor already handed out.
    xid            xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE UNIQUE INDEX usage_events_dedup_idx ON usage_events (tenant_id, source, event_id);
CREATE INDEX usage_events_cursor_idx ON usage_events (xid, seq);
CREATE INDEX usage_events_tenant_cursor_idx ON usage_events (tenant_id, xid, seq);

-- Sums of the accepted events per tenant, type and UTC day of `occurred_at`, kept by the statement
-- that stores the events (so a duplicate never adds to them): totals and budgets read these, never
-- the events.
CREATE TABLE usage_daily (
    tenant_id uuid   NOT NULL,
    type      text   NOT NULL,
    day       date   NOT NULL,
    quantity  bigint NOT NULL,
    events    bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, type)
);

-- Billing records are facts: the API only appends them.
CREATE FUNCTION usage_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage_events is append-only';
END $$;
CREATE TRIGGER usage_events_no_update_or_delete BEFORE UPDATE OR DELETE ON usage_events
    FOR EACH ROW EXECUTE FUNCTION usage_events_are_append_only();
