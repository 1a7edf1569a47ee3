-- Rollback of 0003_app_role_grants: revokes exactly what the migration granted. The role
-- itself stays (the provisioning made it, not this migration).

REVOKE SELECT ON v_active_context_stats, v_working_memory_stats FROM mas_memory_rw;
REVOKE USAGE, SELECT ON SEQUENCE active_context_id_seq, working_memory_id_seq FROM mas_memory_rw;
REVOKE SELECT, INSERT, UPDATE, DELETE ON active_context, working_memory FROM mas_memory_rw;
