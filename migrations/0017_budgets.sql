-- Budgets enforced (issue 13.6, FR-006): overrides that lift a `requireOverride` budget once two
-- people other than the requester approve them, and the thresholds each tenant crossed each month.

CREATE TABLE budget_overrides (
    id           uuid PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The monthly limit while the override is in force (the budget's, plus the amount asked for).
    new_limit    bigint      NOT NULL CHECK (new_limit > 0),
    reason       text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- How long it is in force once granted.
    lasts        interval    NOT NULL,
    -- Pending: until when it may be approved; granted: until when it is in force.
    expires_at   timestamptz NOT NULL,
    -- Set by the second approval.
    granted_at   timestamptz
);
CREATE INDEX budget_overrides_tenant_idx ON budget_overrides (tenant_id, requested_at);

CREATE TABLE budget_override_approvals (
    override_id uuid        NOT NULL REFERENCES budget_overrides (id) ON DELETE CASCADE,
    approver    text        NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (override_id, approver)
);

-- Each threshold a tenant crossed in a month, once: whichever replica inserts it notifies.
CREATE TABLE budget_alerts (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month      date        NOT NULL,
    -- A warnAt percentage, or 100 for the limit itself.
    threshold  smallint    NOT NULL,
    crossed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, month, threshold)
);
