-- The language a user reads Gatehouse's mail in (NFR-017): `en` or `de`, set from the inviting
-- page's language and whenever the user switches the pages' language while signed in. NULL: not
-- known yet (mail in the request's language, else English).
ALTER TABLE users ADD COLUMN language text;
