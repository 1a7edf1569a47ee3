-- 0002_fact_idempotency: an optional idempotency key on working_memory facts (issue #11).
--
-- A fact has no natural key, so a caller that retries add_fact after a lost reply (its INSERT
-- committed, the answer never arrived) would store the fact twice. With this column the caller
-- names each fact; the adapter inserts with ON CONFLICT DO NOTHING on the unique index below
-- and, when the key is taken, returns the stored fact's id if its fields match, or refuses
-- the call if they differ. Undone by 0002_fact_idempotency.rollback.sql.
--
--   * Nullable, no default: existing rows and facts stored without a key keep NULL, and adding
--     the column rewrites nothing (a catalog change only).
--   * TEXT with a CHECK of 1..255 characters (the adapter checks the same before sending):
--     a named violation (valid_idempotency_key) instead of VARCHAR's anonymous truncation
--     error; 255 is session_id's bound and fits any UUID, hash or composite key.
--   * A partial UNIQUE index (WHERE idempotency_key IS NOT NULL), not a UNIQUE constraint.
--     NULLs are distinct under both (PostgreSQL 15's default), so both let any number of
--     key-less facts coexist; but a constraint's index would hold an entry for every key-less
--     fact too, which each insert (and every store_many COPY) would pay for and never use.
--     ON CONFLICT targets the partial index cleanly by inference:
--       ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
--     (ON CONFLICT ON CONSTRAINT cannot name an index, only a constraint). A duplicate that
--     still reaches it is a unique_violation naming unique_session_idempotency_key.
--   * Plain CREATE INDEX inside the migration's transaction: all of it applies or none. The
--     build scans working_memory once while holding off writers to it (at migration time no row
--     has a key, so the index starts empty). For a very large table, build it instead in a
--     separate `-- transactional: false` migration with CREATE UNIQUE INDEX CONCURRENTLY (see
--     migrations/README.md).
--
-- depends: 0001_active_context

ALTER TABLE working_memory
    ADD COLUMN idempotency_key TEXT,
    ADD CONSTRAINT valid_idempotency_key
        CHECK (idempotency_key IS NULL OR LENGTH(idempotency_key) BETWEEN 1 AND 255);

COMMENT ON COLUMN working_memory.idempotency_key IS 'Caller-chosen key, unique per session: a retried write with the same key stores no second fact (NULL = no key)';

-- One fact per (session, key); facts without a key are not indexed at all.
CREATE UNIQUE INDEX unique_session_idempotency_key
    ON working_memory (session_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
