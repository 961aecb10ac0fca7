-- Webhook deliveries seen in the last day, so a replayed or redelivered push is answered without a
-- pass. Keyed by the provider's delivery id and by the digest of the signed body: GitHub's delivery
-- id is not covered by its signature, so a replay under a new id still matches its body.
CREATE TABLE webhook_deliveries (
    key text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_received_at_idx ON webhook_deliveries USING brin (received_at);
