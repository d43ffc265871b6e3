-- Keep updated_at honest for every writer (ORM, raw SQL, psql sessions).
-- Rows whose values did not change (UPDATE ... SET x = x) keep their timestamp.
CREATE FUNCTION set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION set_updated_at() IS 'BEFORE UPDATE trigger: sets NEW.updated_at to now().';

-- One trigger per table with an updated_at column (tests check none is missing).
CREATE TRIGGER trg_users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_decks_set_updated_at
    BEFORE UPDATE ON decks
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_flashcards_set_updated_at
    BEFORE UPDATE ON flashcards
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_review_sessions_set_updated_at
    BEFORE UPDATE ON review_sessions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_daily_study_stats_set_updated_at
    BEFORE UPDATE ON daily_study_stats
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_deck_stats_set_updated_at
    BEFORE UPDATE ON deck_stats
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_deck_subscriptions_set_updated_at
    BEFORE UPDATE ON deck_subscriptions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_user_sessions_set_updated_at
    BEFORE UPDATE ON user_sessions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at();
