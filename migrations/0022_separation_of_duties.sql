-- Separation of duties for budget overrides (issue 25.4, ADR 0014): who made each account what it
-- is. `lineage` holds the users who invited a user or raised their role, and theirs before them,
-- copied when it happens (deleting one of them later changes nothing). Users declared in Git or
-- created by operators have none. A request and its approvals keep the lineage of their person
-- (with the person's id), so that an override needs people none of whom the others made.
ALTER TABLE users ADD COLUMN lineage uuid[] NOT NULL DEFAULT '{}';
ALTER TABLE budget_overrides ADD COLUMN requester_lineage uuid[] NOT NULL DEFAULT '{}';
ALTER TABLE budget_override_approvals ADD COLUMN lineage uuid[] NOT NULL DEFAULT '{}';

-- The scope granted to an OpenID client's session, kept with the session (the code it came from is
-- pruned an hour after it expires, while the session lives on).
ALTER TABLE sessions ADD COLUMN scope text;
UPDATE sessions s SET scope = c.scope FROM oidc_codes c WHERE c.issued_session_id = s.id;
