-- Rollback of 0001_active_context: drops exactly the objects the migration created.
--
-- WARNING: this deletes every row of active_context and working_memory.
-- No CASCADE: an object another migration built on these (a later view, a foreign key) makes
-- the rollback fail, in one transaction and without dropping anything, instead of being
-- dropped silently. Roll that later migration back first (`yoyo rollback` does, in order).

DROP VIEW v_working_memory_stats;
DROP VIEW v_active_context_stats;

DROP FUNCTION cleanup_expired_records();
DROP FUNCTION cleanup_expired_working_memory();
DROP FUNCTION cleanup_expired_active_context();

DROP TRIGGER trigger_working_memory_updated_at ON working_memory;
DROP FUNCTION update_updated_at_column();

-- The tables take their indexes, constraints, comments and SERIAL sequences with them.
DROP TABLE working_memory;
DROP TABLE active_context;
