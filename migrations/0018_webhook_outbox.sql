-- Budget notifications (issue 13.6): signed webhooks, queued in the transaction of the step they
-- announce and delivered with retries and backoff by whichever replica claims them.
CREATE TABLE webhook_outbox (
    id              uuid PRIMARY KEY,
    url             text        NOT NULL,
    event           text        NOT NULL,
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
