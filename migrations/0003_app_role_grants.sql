-- 0003_app_role_grants: the adapter's least privileges (issue #18).
--
-- Migrations run as the schema owner (`mas`), which owns the tables. The adapter logs in as a
-- role that may only read and write their rows: this migration grants exactly that to the
-- group role `mas_memory_rw`. Undone by 0003_app_role_grants.rollback.sql.
--
--   * A group role, not the login role: the grants name one fixed role, and each deployment
--     makes its own login roles members of it (`GRANT mas_memory_rw TO mas_app`). Creating
--     roles needs CREATEROLE, which the owner has not: the provisioning creates
--     `mas_memory_rw` and the login role as superuser (mas-devstack at `up`, the lab's
--     container init; docs/security.md). Without the role this migration fails, naming it.
--   * DML only: SELECT, INSERT, UPDATE, DELETE on the two tables, and their id sequences
--     (SERIAL defaults call nextval). No TRUNCATE, REFERENCES or TRIGGER; no CREATE on the
--     schema (PostgreSQL 15 gives PUBLIC none), no DDL at all: only an owner may ALTER or
--     DROP a table. The cleanup functions run with the caller's rights (they DELETE), and
--     EXECUTE on functions is PUBLIC's by default. The views read the tables as the view's
--     owner, so SELECT on them is granted too (the statistics).
--   * A migration that adds a table grants on it in the same migration.
--
-- depends: 0002_fact_idempotency

GRANT SELECT, INSERT, UPDATE, DELETE ON active_context, working_memory TO mas_memory_rw;
GRANT USAGE, SELECT ON SEQUENCE active_context_id_seq, working_memory_id_seq TO mas_memory_rw;
GRANT SELECT ON v_active_context_stats, v_working_memory_stats TO mas_memory_rw;
