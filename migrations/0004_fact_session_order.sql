-- 0004_fact_session_order: indexes that read a session's facts in the order asked (issue 20).
--
-- Before this migration a session's facts were found through idx_working_memory_session and
-- then sorted: get_facts (most confident first) and search (newest first, the default order)
-- read and sorted EVERY fact of the session to return the first 100 or 10, so their cost grew
-- with the session (measured by `scripts/bench --scaling`, with EXPLAIN (ANALYZE, BUFFERS)
-- before and after this migration in docs/benchmarks.md). The
-- planner sometimes walked idx_working_memory_confidence over the whole table instead,
-- filtering on the session: cheap for a huge session, a scan of most of the table for a small
-- one. With an index whose key is the session then the ORDER BY of the statement, both read
-- exactly the rows they return: O(log n + limit), whatever the session's size.
--
--   * (session_id, confidence DESC, updated_at DESC, id): get_facts' ORDER BY confidence
--     DESC, updated_at DESC, id; a min_confidence filter is a range of it.
--   * (session_id, created_at DESC, id DESC): search's default order for facts
--     (created_at DESC, id DESC), and created_at ASC read backwards.
--   * idx_working_memory_session stays: it is the spec's, and a prefix of both; dropping it
--     would save a little on each write (measured: docs/benchmarks.md, the rows "without 0004").
--   * Plain CREATE INDEX inside the migration's transaction: all or nothing. Each build reads
--     working_memory once and holds off writers to it meanwhile (the study times the build:
--     docs/benchmarks.md). For a much larger live table, build them instead with CREATE INDEX
--     CONCURRENTLY in `-- transactional: false` migrations, one statement each (see
--     migrations/README.md).
--
-- Undone by 0004_fact_session_order.rollback.sql.
--
-- Number 0004 because 0003 is 0003_app_role_grants (issue 18), which lands separately. This
-- migration depends only on what its indexes need (0002's table as it stands), not on 0003, so
-- it applies whether or not 0003 exists, and rolling either back leaves the other in place.
--
-- depends: 0002_fact_idempotency

CREATE INDEX idx_working_memory_session_confidence
    ON working_memory (session_id, confidence DESC, updated_at DESC, id);

CREATE INDEX idx_working_memory_session_created
    ON working_memory (session_id, created_at DESC, id DESC);
