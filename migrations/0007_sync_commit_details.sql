-- Issue 15.3: the status names who made the commit the config is at, and what it says.
ALTER TABLE sync_state ADD COLUMN source_author text, ADD COLUMN source_subject text;
