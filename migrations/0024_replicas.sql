-- Every running replica says it is alive every 15 seconds (issue 23.3: the platform page lists the
-- replicas beside the reconciler's leader). A replica that stops removes its row; one that dies
-- stops being seen, and its row goes after a day.
CREATE TABLE replicas (
    name       text        PRIMARY KEY,
    address    text        NOT NULL,
    version    text        NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);
