-- Platform auditors (bound from an identity provider's groups) are actors of their own kind in the
-- audit log, beside operators (issue 10.5).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('user', 'operator', 'auditor', 'system', 'application', 'anonymous'));
