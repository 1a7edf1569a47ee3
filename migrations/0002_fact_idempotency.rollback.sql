-- Rollback of 0002_fact_idempotency: drops exactly the objects the migration created.
--
-- WARNING: this deletes every fact's idempotency key (the facts themselves stay). No CASCADE,
-- as in 0001's rollback: an object another migration built on the column makes the rollback
-- fail, in one transaction and without dropping anything.

DROP INDEX unique_session_idempotency_key;

-- The column takes its comment with it.
ALTER TABLE working_memory
    DROP CONSTRAINT valid_idempotency_key,
    DROP COLUMN idempotency_key;
