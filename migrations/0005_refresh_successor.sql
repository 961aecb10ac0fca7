-- Issue 11.2: of concurrent refreshes with one token exactly one rotates; the others (and a
-- client's retry) within the grace window get the same new pair. Only hashes of tokens are stored,
-- so the winner keeps its pair here, sealed to the spent token (a key derived from the token
-- itself, which the server does not keep) and then by the key ring named by key_id. Cleared once
-- the grace window is over; the row itself stays to detect a reuse after it.
ALTER TABLE spent_refresh_tokens
    ADD COLUMN key_id      text,
    ADD COLUMN pair_sealed bytea;

-- Issue 11.1: account_lockouts.failures now counts attempts as they are reserved, before the
-- secret is verified (a verified one is given back), and last_failure_at is the last attempt.
COMMENT ON COLUMN account_lockouts.failures IS
    'attempts counted as failures when reserved, before verification; a verified attempt is given back';
