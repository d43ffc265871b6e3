-- Cards due for review right now, per deck owner (the study queue).
-- Served by ix_flashcards_due_at_unmastered / ix_flashcards_deck_id_due_at.
CREATE VIEW due_cards AS
SELECT
    d.owner_id AS user_id,
    f.deck_id,
    d.title AS deck_title,
    f.id AS flashcard_id,
    f.front,
    f.back,
    f.hint,
    f.status,
    f.ease_factor,
    f.interval_days,
    f.repetitions,
    f.due_at,
    f.last_reviewed_at
FROM flashcards AS f
JOIN decks AS d ON d.id = f.deck_id
WHERE f.due_at <= now()
  AND f.status <> 'MASTERED'::card_status;

COMMENT ON VIEW due_cards IS
    'Flashcards due now (due_at <= now(), not MASTERED), one row per card with its owner as user_id.';
