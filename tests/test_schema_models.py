"""Build the Cognition Curator schema in a real PostgreSQL 15 and check its behaviour.

The schema is built exactly like the deployer does: CREATE EXTENSION for schema.EXTENSIONS,
metadata.create_all, then every schema/sql/*.sql file in name order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import schema

REPO = Path(__file__).resolve().parent.parent
SQL_DIR = Path(schema.__file__).parent / "sql"
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1; longer names are silently truncated

EXPECTED_TABLES = {
    "users",
    "decks",
    "flashcards",
    "review_sessions",
    "card_reviews",
    "daily_study_stats",
    "deck_stats",
    "deck_subscriptions",
    "user_sessions",
}


@pytest.fixture(scope="session")
def engine(pg) -> Iterator[Engine]:
    """The schema built exactly as the deployer builds it (extensions, models, sql/*.sql)."""
    from deploy.config import load_config
    from deploy.desired import build, load_desired

    url = pg.new("models")
    build(load_desired(load_config(REPO)), url)
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    yield eng
    eng.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        trans = connection.begin()
        try:
            yield connection
        finally:
            trans.rollback()


def _scalar(conn: Connection, sql: str, **params: object) -> object:
    return conn.execute(sa.text(sql), params).scalar_one()


def _make_user(conn: Connection, email: str = "ada@example.com") -> object:
    return _scalar(
        conn,
        "INSERT INTO users (email, password_hash, display_name)"
        " VALUES (:email, 'scrypt:x', 'Ada') RETURNING id",
        email=email,
    )


def _make_deck(conn: Connection, owner_id: object, title: str = "Spanish verbs") -> object:
    return _scalar(
        conn,
        "INSERT INTO decks (owner_id, title) VALUES (:owner, :title) RETURNING id",
        owner=owner_id,
        title=title,
    )


def _make_card(conn: Connection, deck_id: object, due: str, status: str = "NEW") -> object:
    return _scalar(
        conn,
        "INSERT INTO flashcards (deck_id, front, back, due_at, status)"
        " VALUES (:deck, 'hablar', 'to speak', now() + CAST(:due AS interval),"
        " CAST(:status AS card_status)) RETURNING id",
        deck=deck_id,
        due=due,
        status=status,
    )


# --- metadata-only checks -------------------------------------------------------------


def test_metadata_has_the_nine_tables() -> None:
    assert set(schema.metadata.tables) == EXPECTED_TABLES
    assert schema.EXTENSIONS == ("uuid-ossp",)


def _all_metadata_names() -> list[str]:
    names: list[str] = []
    for table in schema.metadata.tables.values():
        names.append(table.name)
        names.extend(str(c.name) for c in table.constraints)
        names.extend(str(i.name) for i in table.indexes)
    return names


def test_generated_names_fit_postgres_identifier_limit() -> None:
    too_long = [n for n in _all_metadata_names() if len(n.encode()) > MAX_IDENTIFIER_BYTES]
    assert not too_long
    assert "None" not in _all_metadata_names()


def test_every_table_and_key_column_is_commented() -> None:
    for table in schema.metadata.tables.values():
        assert table.comment, table.name
    assert schema.metadata.tables["flashcards"].c.ease_factor.comment
    assert schema.metadata.tables["users"].c.preferences.comment


# --- checks against the built database ------------------------------------------------


def test_tables_view_and_extension_exist(conn: Connection) -> None:
    tables = set(
        conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ).scalars()
    )
    assert tables == EXPECTED_TABLES
    assert _scalar(conn, "SELECT count(*) FROM pg_views WHERE viewname = 'due_cards'") == 1
    assert _scalar(conn, "SELECT obj_description('due_cards'::regclass, 'pg_class')")
    assert _scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'") == 1


def test_card_status_enum_values(conn: Connection) -> None:
    labels = (
        conn.execute(
            sa.text(
                "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                " WHERE t.typname = 'card_status' ORDER BY e.enumsortorder"
            )
        )
        .scalars()
        .all()
    )
    assert labels == ["NEW", "LEARNING", "REVIEW", "MASTERED"]


def test_database_names_match_metadata(conn: Connection) -> None:
    """Nothing was truncated: every constraint/index name in the DB is the metadata name."""
    db_names = set(
        conn.execute(
            sa.text(
                "SELECT conname FROM pg_constraint c JOIN pg_namespace n"
                " ON n.oid = c.connamespace WHERE n.nspname = 'public'"
                " UNION SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            )
        ).scalars()
    )
    expected = {
        str(obj.name)
        for table in schema.metadata.tables.values()
        for obj in [*table.constraints, *table.indexes]
    }
    assert expected <= db_names
    assert all(len(n.encode()) <= MAX_IDENTIFIER_BYTES for n in db_names)


def test_every_foreign_key_has_a_leading_index(conn: Connection) -> None:
    missing = (
        conn.execute(
            sa.text(
                """
            SELECT c.conrelid::regclass::text || '.' || c.conname
            FROM pg_constraint c
            WHERE c.contype = 'f'
              AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.conrelid
                  AND i.indpred IS NULL
                  AND (i.indkey::int2[])[0] = c.conkey[1]
              )
            """
            )
        )
        .scalars()
        .all()
    )
    assert missing == []


def test_due_cards_view_returns_only_due_unmastered_cards(conn: Connection) -> None:
    user = _make_user(conn)
    other = _make_user(conn, "bob@example.com")
    deck = _make_deck(conn, user)
    due = _make_card(conn, deck, "-1 hour", "REVIEW")
    _make_card(conn, deck, "+2 days", "REVIEW")  # not due yet
    _make_card(conn, deck, "-1 day", "MASTERED")  # mastered: never shown
    rows = conn.execute(
        sa.text("SELECT flashcard_id, deck_title FROM due_cards WHERE user_id = :u"),
        {"u": user},
    ).all()
    assert [(r.flashcard_id, r.deck_title) for r in rows] == [(due, "Spanish verbs")]
    assert _scalar(conn, "SELECT count(*) FROM due_cards WHERE user_id = :u", u=other) == 0


def test_updated_at_trigger_bumps_timestamp(conn: Connection) -> None:
    # Triggers fire only on UPDATE, so a backdated INSERT gives a stale starting value.
    user = _scalar(
        conn,
        "INSERT INTO users (email, password_hash, display_name, updated_at)"
        " VALUES ('ada@example.com', 'scrypt:x', 'Ada', now() - interval '1 day')"
        " RETURNING id",
    )
    stale = "SELECT updated_at < now() FROM users WHERE id = :u"
    conn.execute(sa.text("UPDATE users SET display_name = display_name WHERE id = :u"), {"u": user})
    assert _scalar(conn, stale, u=user)  # no-op update keeps the timestamp
    conn.execute(sa.text("UPDATE users SET display_name = 'Ada L.' WHERE id = :u"), {"u": user})
    assert _scalar(conn, "SELECT updated_at = now() FROM users WHERE id = :u", u=user)


def test_every_updated_at_table_has_the_trigger(conn: Connection) -> None:
    with_column = set(
        conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND column_name = 'updated_at'"
                " AND table_name IN (SELECT tablename FROM pg_tables"
                "                    WHERE schemaname = 'public')"
            )
        ).scalars()
    )
    with_trigger = set(
        conn.execute(
            sa.text(
                "SELECT t.tgrelid::regclass::text FROM pg_trigger t"
                " JOIN pg_proc p ON p.oid = t.tgfoid"
                " WHERE p.proname = 'set_updated_at' AND NOT t.tgisinternal"
            )
        ).scalars()
    )
    assert with_column == with_trigger
    assert len(with_column) == 8  # all tables except the append-only card_reviews


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("UPDATE flashcards SET ease_factor = 1.2", "ck_flashcards_ease_factor_min"),
        ("UPDATE flashcards SET interval_days = -1", "ck_flashcards_interval_days_nonnegative"),
        (
            "UPDATE review_sessions SET ended_at = started_at - interval '1 minute'",
            "ck_review_sessions_ended_after_started",
        ),
        ("UPDATE card_reviews SET rating = 6", "ck_card_reviews_rating_range"),
        ("UPDATE users SET email = 'Ada@Example.com'", "ck_users_email_lowercase"),
    ],
)
def test_check_constraints_reject_bad_data(conn: Connection, sql: str, constraint: str) -> None:
    user = _make_user(conn)
    deck = _make_deck(conn, user)
    card = _make_card(conn, deck, "0 seconds")
    session = _scalar(
        conn,
        "INSERT INTO review_sessions (user_id, deck_id) VALUES (:u, :d) RETURNING id",
        u=user,
        d=deck,
    )
    conn.execute(
        sa.text(
            "INSERT INTO card_reviews (session_id, flashcard_id, user_id, rating,"
            " previous_interval_days, new_interval_days, previous_ease_factor, new_ease_factor)"
            " VALUES (:s, :c, :u, 4, 0, 1, 2.5, 2.5)"
        ),
        {"s": session, "c": card, "u": user},
    )
    with pytest.raises(sa.exc.IntegrityError, match=constraint), conn.begin_nested():
        conn.execute(sa.text(sql))


def test_duplicate_daily_stats_row_is_rejected(conn: Connection) -> None:
    user = _make_user(conn)
    insert = sa.text("INSERT INTO daily_study_stats (user_id, day) VALUES (:u, current_date)")
    conn.execute(insert, {"u": user})
    with pytest.raises(sa.exc.IntegrityError, match="uq_daily_study"), conn.begin_nested():
        conn.execute(insert, {"u": user})


def test_on_delete_behaviour(conn: Connection) -> None:
    user = _make_user(conn)
    fan = _make_user(conn, "fan@example.com")
    deck = _make_deck(conn, user)
    _make_card(conn, deck, "-1 hour")
    _make_card(conn, deck, "+1 hour")
    session = _scalar(
        conn,
        "INSERT INTO review_sessions (user_id, deck_id) VALUES (:u, :d) RETURNING id",
        u=user,
        d=deck,
    )
    conn.execute(
        sa.text("INSERT INTO deck_subscriptions (user_id, deck_id) VALUES (:u, :d)"),
        {"u": fan, "d": deck},
    )

    # RESTRICT: a subscribed deck cannot be deleted.
    with pytest.raises(sa.exc.IntegrityError, match="deck_subscriptions"), conn.begin_nested():
        conn.execute(sa.text("DELETE FROM decks WHERE id = :d"), {"d": deck})

    conn.execute(sa.text("DELETE FROM deck_subscriptions WHERE deck_id = :d"), {"d": deck})
    conn.execute(sa.text("DELETE FROM decks WHERE id = :d"), {"d": deck})

    # CASCADE: the deck's flashcards are gone.
    assert _scalar(conn, "SELECT count(*) FROM flashcards WHERE deck_id = :d", d=deck) == 0
    # SET NULL: the study session survives without its deck.
    assert _scalar(conn, "SELECT deck_id FROM review_sessions WHERE id = :s", s=session) is None
