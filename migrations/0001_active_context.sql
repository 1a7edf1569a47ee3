-- 0001_active_context: L1 active context and L2 working memory (the spec's Priority 5).
--
-- Creates the tables active_context (recent conversation turns, default TTL 24 h) and
-- working_memory (session facts, default TTL 7 days), their indexes, the updated_at trigger,
-- the three cleanup functions and the two statistics views. Undone by
-- 0001_active_context.rollback.sql, which drops exactly these objects.
--
-- Differences from the spec's psql script, on purpose:
--   * TIMESTAMPTZ instead of TIMESTAMP: every instant is stored as UTC, whatever the session's
--     TimeZone setting.
--   * Plain CREATE, not CREATE ... IF NOT EXISTS: yoyo records what it applied, so a second
--     `yoyo apply` is already a no-op. IF NOT EXISTS would silently keep an older, different
--     schema (for example the spec's TIMESTAMP one) and the rollback would then drop objects
--     this migration never created. Instead the migration fails, as one transaction, and
--     changes nothing.
--   * "Expired" means ttl_expires_at <= now(), in the cleanup functions, the views and the
--     adapter alike (the spec's script mixes < and >= at the boundary instant).
--   * No psql meta-commands (\dt ...): yoyo runs the file through the driver.
--   * Permissions are left to the operator, per environment, as in the spec, e.g.
--       GRANT SELECT, INSERT, UPDATE, DELETE ON active_context, working_memory TO app_user;
--       GRANT USAGE, SELECT ON SEQUENCE active_context_id_seq, working_memory_id_seq TO app_user;
--       GRANT EXECUTE ON FUNCTION cleanup_expired_records() TO app_user;  (and the other two)
--
-- depends:

-- ============================================================================
-- Table: active_context (L1 memory: recent conversation turns)
-- ============================================================================
CREATE TABLE active_context (
    id SERIAL PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL,
    turn_id INTEGER NOT NULL,
    content TEXT NOT NULL,
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ttl_expires_at TIMESTAMPTZ,
    CONSTRAINT unique_session_turn UNIQUE (session_id, turn_id),
    CONSTRAINT valid_turn_id CHECK (turn_id >= 0),
    CONSTRAINT valid_ttl CHECK (ttl_expires_at IS NULL OR ttl_expires_at > created_at)
);

COMMENT ON TABLE active_context IS 'L1 memory: Recent conversation turns with 24-hour TTL';
COMMENT ON COLUMN active_context.id IS 'Auto-incrementing primary key';
COMMENT ON COLUMN active_context.session_id IS 'Session identifier (UUID or custom ID)';
COMMENT ON COLUMN active_context.turn_id IS 'Sequential turn number within session';
COMMENT ON COLUMN active_context.content IS 'Turn content (user message or assistant response)';
COMMENT ON COLUMN active_context.metadata IS 'Flexible metadata (role, tokens, embeddings, etc.)';
COMMENT ON COLUMN active_context.created_at IS 'Timestamp when turn was created';
COMMENT ON COLUMN active_context.ttl_expires_at IS 'Expiration timestamp (NULL = never expires)';

-- Session lookups (the most common query).
CREATE INDEX idx_active_context_session ON active_context (session_id);
-- Session + turn lookups, newest turn first.
CREATE INDEX idx_active_context_session_turn ON active_context (session_id, turn_id DESC);
-- TTL cleanup; partial: only rows that can expire.
CREATE INDEX idx_active_context_expires ON active_context (ttl_expires_at)
    WHERE ttl_expires_at IS NOT NULL;
-- Time-ordered queries.
CREATE INDEX idx_active_context_created ON active_context (created_at DESC);
-- Optional, for metadata @> queries; left out as in the spec:
-- CREATE INDEX idx_active_context_metadata ON active_context USING GIN (metadata);

-- ============================================================================
-- Table: working_memory (L2 memory: session-scoped facts)
-- ============================================================================
CREATE TABLE working_memory (
    id SERIAL PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL,
    fact_type VARCHAR(50) NOT NULL,
    content TEXT NOT NULL,
    confidence FLOAT DEFAULT 1.0,
    source_turn_ids INTEGER[] DEFAULT '{}',
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ttl_expires_at TIMESTAMPTZ,
    CONSTRAINT valid_confidence CHECK (confidence >= 0.0 AND confidence <= 1.0),
    CONSTRAINT valid_fact_type CHECK (LENGTH(fact_type) > 0),
    CONSTRAINT valid_ttl_wm CHECK (ttl_expires_at IS NULL OR ttl_expires_at > created_at)
);

COMMENT ON TABLE working_memory IS 'L2 memory: Session-scoped facts and entities with 7-day TTL';
COMMENT ON COLUMN working_memory.id IS 'Auto-incrementing primary key';
COMMENT ON COLUMN working_memory.session_id IS 'Session identifier';
COMMENT ON COLUMN working_memory.fact_type IS 'Fact classification (entity, preference, constraint, goal, etc.)';
COMMENT ON COLUMN working_memory.content IS 'Fact content or description';
COMMENT ON COLUMN working_memory.confidence IS 'Confidence score (0.0 = uncertain, 1.0 = certain)';
COMMENT ON COLUMN working_memory.source_turn_ids IS 'Array of turn IDs that contributed to this fact';
COMMENT ON COLUMN working_memory.metadata IS 'Additional metadata (embeddings, references, etc.)';
COMMENT ON COLUMN working_memory.created_at IS 'Timestamp when fact was first created';
COMMENT ON COLUMN working_memory.updated_at IS 'Timestamp when fact was last updated';
COMMENT ON COLUMN working_memory.ttl_expires_at IS 'Expiration timestamp (NULL = never expires)';

CREATE INDEX idx_working_memory_session ON working_memory (session_id);
CREATE INDEX idx_working_memory_session_type ON working_memory (session_id, fact_type);
CREATE INDEX idx_working_memory_type ON working_memory (fact_type);
CREATE INDEX idx_working_memory_confidence ON working_memory (confidence DESC);
CREATE INDEX idx_working_memory_expires ON working_memory (ttl_expires_at)
    WHERE ttl_expires_at IS NOT NULL;
CREATE INDEX idx_working_memory_updated ON working_memory (updated_at DESC);
-- Optional GIN indexes, left out as in the spec:
-- CREATE INDEX idx_working_memory_metadata ON working_memory USING GIN (metadata);
-- CREATE INDEX idx_working_memory_source_turns ON working_memory USING GIN (source_turn_ids);

-- ============================================================================
-- updated_at maintenance
-- ============================================================================
CREATE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

COMMENT ON FUNCTION update_updated_at_column() IS 'Automatically updates updated_at timestamp on row modification';

CREATE TRIGGER trigger_working_memory_updated_at
    BEFORE UPDATE ON working_memory
    FOR EACH ROW
    EXECUTE FUNCTION update_updated_at_column();

-- ============================================================================
-- Cleanup functions (for scheduled jobs); each returns how many rows it deleted
-- ============================================================================
CREATE FUNCTION cleanup_expired_active_context()
RETURNS INTEGER AS $$
DECLARE
    deleted_count INTEGER;
BEGIN
    DELETE FROM active_context
    WHERE ttl_expires_at IS NOT NULL
      AND ttl_expires_at <= NOW();
    GET DIAGNOSTICS deleted_count = ROW_COUNT;
    RETURN deleted_count;
END;
$$ LANGUAGE plpgsql;

COMMENT ON FUNCTION cleanup_expired_active_context() IS 'Delete expired active context records, returns count';

CREATE FUNCTION cleanup_expired_working_memory()
RETURNS INTEGER AS $$
DECLARE
    deleted_count INTEGER;
BEGIN
    DELETE FROM working_memory
    WHERE ttl_expires_at IS NOT NULL
      AND ttl_expires_at <= NOW();
    GET DIAGNOSTICS deleted_count = ROW_COUNT;
    RETURN deleted_count;
END;
$$ LANGUAGE plpgsql;

COMMENT ON FUNCTION cleanup_expired_working_memory() IS 'Delete expired working memory records, returns count';

CREATE FUNCTION cleanup_expired_records()
RETURNS TABLE (
    active_context_deleted INTEGER,
    working_memory_deleted INTEGER,
    total_deleted INTEGER
) AS $$
DECLARE
    ac_count INTEGER;
    wm_count INTEGER;
BEGIN
    ac_count := cleanup_expired_active_context();
    wm_count := cleanup_expired_working_memory();
    RETURN QUERY SELECT ac_count, wm_count, ac_count + wm_count;
END;
$$ LANGUAGE plpgsql;

COMMENT ON FUNCTION cleanup_expired_records() IS 'Cleanup expired records from all tables, returns counts';

-- ============================================================================
-- Statistics views (observability)
-- ============================================================================
CREATE VIEW v_active_context_stats AS
SELECT
    session_id,
    COUNT(*) AS turn_count,
    MIN(created_at) AS first_turn_at,
    MAX(created_at) AS last_turn_at,
    COUNT(*) FILTER (WHERE ttl_expires_at <= NOW()) AS expired_count,
    COUNT(*) FILTER (WHERE ttl_expires_at > NOW() OR ttl_expires_at IS NULL) AS active_count
FROM active_context
GROUP BY session_id;

COMMENT ON VIEW v_active_context_stats IS 'Statistics for active context by session';

CREATE VIEW v_working_memory_stats AS
SELECT
    session_id,
    COUNT(*) AS fact_count,
    COUNT(DISTINCT fact_type) AS fact_type_count,
    AVG(confidence) AS avg_confidence,
    MIN(created_at) AS first_fact_at,
    MAX(updated_at) AS last_updated_at,
    COUNT(*) FILTER (WHERE ttl_expires_at <= NOW()) AS expired_count,
    COUNT(*) FILTER (WHERE ttl_expires_at > NOW() OR ttl_expires_at IS NULL) AS active_count
FROM working_memory
GROUP BY session_id;

COMMENT ON VIEW v_working_memory_stats IS 'Statistics for working memory by session';
