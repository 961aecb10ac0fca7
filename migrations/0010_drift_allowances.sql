-- Issue 15.6: an operator allows a tenant's drift until a deadline. Until then the reconciler reports
-- the drift and does not revert it, even when the tenant self-heals; after it, it reverts what Git has
-- not adopted. One allowance per tenant; allowing again replaces it. Expired rows are kept (status shows
-- the last one) and ignored by the reconciler.
CREATE TABLE drift_allowances (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    until      timestamptz NOT NULL,
    reason     text NOT NULL,
    allowed_by text NOT NULL,
    allowed_at timestamptz NOT NULL DEFAULT now()
);
