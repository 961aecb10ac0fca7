-- Git write-back (issue 24): a tenant whose file says `sync: { interactiveEdits: writeBack }` turns
-- an interactive change of what Git declares into a commit, pushed to the tracked branch (`direct`)
-- or to a branch of its own for review (`review`). NULL: no write-back.
ALTER TABLE tenants ADD COLUMN write_back text CHECK (write_back IN ('direct', 'review'));

-- A change proposed on a branch (`review`), waiting to be merged in Git. `edit` is the semantic
-- change (redone on a newer head to tell whether it still applies); `diff` is what it changes.
CREATE TABLE proposals (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    branch      text NOT NULL UNIQUE,
    commit      text NOT NULL,
    base_commit text NOT NULL,
    file        text NOT NULL,
    action      text NOT NULL,
    summary     text NOT NULL,
    edit        jsonb NOT NULL,
    diff        text NOT NULL,
    proposed_by text NOT NULL,
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'merged', 'superseded', 'withdrawn')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz
);
CREATE INDEX proposals_tenant_idx ON proposals (tenant_id, created_at DESC);
