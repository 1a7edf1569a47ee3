-- Rollback of 0004_fact_session_order: drops exactly the two indexes it created. No row is
-- touched; get_facts and the facts' search go back to sorting each session's facts.

DROP INDEX idx_working_memory_session_created;
DROP INDEX idx_working_memory_session_confidence;
