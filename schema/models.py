"""Cognition Curator: a Flask flashcard app where users build decks and study them.

Cards are scheduled with SM-2 style spaced repetition (ease factor, interval, repetitions, due_at).
Reviews, sessions and daily/deck statistics feed streaks, XP and retention analytics.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column, relationship

# Alembic's recommended naming convention: every constraint and index gets a deterministic
# name, so the schema diff never sees spurious renames. Keep every name <= 63 bytes
# (PostgreSQL's NAMEDATALEN - 1); tests/test_schema_models.py enforces this.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class CardStatus(enum.Enum):
    """Learning stage of a card; stored as the PostgreSQL enum type ``card_status``."""

    NEW = "NEW"
    LEARNING = "LEARNING"
    REVIEW = "REVIEW"
    MASTERED = "MASTERED"


card_status = Enum(
    CardStatus,
    name="card_status",
    metadata=metadata,
    # Store the member names (NEW, LEARNING, ...), which equal the values here.
    values_callable=lambda members: [m.value for m in members],
    validate_strings=True,
)


def _uuid_pk() -> MappedColumn[uuid.UUID]:
    # uuid-ossp's uuid_generate_v4(), as in the Flask-Migrate-built production database.
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        server_default=text("uuid_generate_v4()"),
    )


def _created_at() -> MappedColumn[dt.datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> MappedColumn[dt.datetime]:
    # Bumped by the set_updated_at() trigger (schema/sql/20_updated_at_trigger.sql), so raw
    # SQL updates are covered too, not only ORM flushes.
    return mapped_column(
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        comment="Last modification time; maintained by the set_updated_at() trigger.",
    )


def _counter(comment: str | None = None) -> MappedColumn[int]:
    return mapped_column(Integer, nullable=False, server_default=text("0"), comment=comment)


_EMPTY_JSONB = text("'{}'::jsonb")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("total_reviews >= 0", name="total_reviews_nonnegative"),
        CheckConstraint("current_streak >= 0", name="current_streak_nonnegative"),
        CheckConstraint("longest_streak >= current_streak", name="longest_streak_ge_current"),
        CheckConstraint("xp >= 0", name="xp_nonnegative"),
        CheckConstraint("daily_goal > 0", name="daily_goal_positive"),
        {"comment": "Registered learners: authentication, preferences and lifetime analytics."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(
        String(320), unique=True, comment="Login e-mail, stored lower-cased (unique)."
    )
    password_hash: Mapped[str] = mapped_column(
        String(255), comment="Werkzeug/scrypt password hash; never the plain password."
    )
    display_name: Mapped[str] = mapped_column(String(80))
    is_active: Mapped[bool] = mapped_column(
        Boolean, server_default=text("true"), comment="False disables login (soft ban)."
    )
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(
        String(64),
        server_default=text("'UTC'"),
        comment="IANA time zone; defines the user's study day for streaks.",
    )
    daily_goal: Mapped[int] = mapped_column(
        Integer, server_default=text("20"), comment="Target number of reviews per day."
    )
    preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        server_default=_EMPTY_JSONB,
        comment="Free-form UI/study settings (theme, new cards per day, ...).",
    )
    total_reviews: Mapped[int] = _counter("Lifetime number of card reviews.")
    current_streak: Mapped[int] = _counter("Consecutive study days up to today.")
    longest_streak: Mapped[int] = _counter("Best streak ever reached.")
    xp: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), comment="Gamification experience points."
    )
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()

    decks: Mapped[list[Deck]] = relationship(back_populates="owner", passive_deletes=True)


class Deck(Base):
    __tablename__ = "decks"
    __table_args__ = (
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        # "My decks" page: a user's decks, newest first.
        Index("ix_decks_owner_id_created_at", "owner_id", "created_at"),
        # Public deck catalogue, newest first.
        Index(
            "ix_decks_public_created_at",
            "created_at",
            postgresql_where=text("is_public"),
        ),
        # Tag filter: tags @> ARRAY['spanish'].
        Index("ix_decks_tags", "tags", postgresql_using="gin"),
        {"comment": "A named collection of flashcards owned by one user."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: a deck belongs to its owner; deleting the account deletes their decks.
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), comment="User who owns and edits the deck."
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_public: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("false"),
        comment="Listed in the public catalogue and open to subscriptions.",
    )
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]"), comment="Lower-case topic tags."
    )
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()

    owner: Mapped[User] = relationship(back_populates="decks")
    flashcards: Mapped[list[Flashcard]] = relationship(back_populates="deck", passive_deletes=True)
    stats: Mapped[DeckStats | None] = relationship(back_populates="deck", passive_deletes=True)


class Flashcard(Base):
    __tablename__ = "flashcards"
    __table_args__ = (
        CheckConstraint("ease_factor >= 1.3", name="ease_factor_min"),
        CheckConstraint("interval_days >= 0", name="interval_days_nonnegative"),
        CheckConstraint("repetitions >= 0", name="repetitions_nonnegative"),
        CheckConstraint("lapses >= 0", name="lapses_nonnegative"),
        CheckConstraint("length(btrim(front)) > 0", name="front_not_blank"),
        # Study queue of one deck ordered by due date; also serves the deck_id FK (cascades).
        Index("ix_flashcards_deck_id_due_at", "deck_id", "due_at"),
        # Cards still in rotation, for the due_cards view and the reminder-mail job.
        Index(
            "ix_flashcards_due_at_unmastered",
            "due_at",
            postgresql_where=text("status <> 'MASTERED'::card_status"),
        ),
        {"comment": "One question/answer card with its spaced-repetition (SM-2) state."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: cards have no meaning outside their deck.
    deck_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"))
    front: Mapped[str] = mapped_column(Text, comment="Prompt side (Markdown).")
    back: Mapped[str] = mapped_column(Text, comment="Answer side (Markdown).")
    hint: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        server_default=_EMPTY_JSONB,
        comment="Media URLs, cloze data and other card-type specific fields.",
    )
    status: Mapped[CardStatus] = mapped_column(
        card_status, server_default=text("'NEW'"), comment="Learning stage of the card."
    )
    ease_factor: Mapped[Decimal] = mapped_column(
        Numeric(4, 2),
        server_default=text("2.5"),
        comment="SM-2 ease factor; never below 1.3.",
    )
    interval_days: Mapped[int] = _counter("Current review interval in days.")
    repetitions: Mapped[int] = _counter("Successful reviews in a row (SM-2 n).")
    lapses: Mapped[int] = _counter("Times the card was forgotten after being learned.")
    due_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        comment="When the card is next due for review.",
    )
    last_reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()

    deck: Mapped[Deck] = relationship(back_populates="flashcards")


class ReviewSession(Base):
    __tablename__ = "review_sessions"
    __table_args__ = (
        CheckConstraint("ended_at >= started_at", name="ended_after_started"),
        CheckConstraint("cards_reviewed >= 0", name="cards_reviewed_nonnegative"),
        CheckConstraint(
            "cards_correct >= 0 AND cards_correct <= cards_reviewed",
            name="cards_correct_range",
        ),
        # Study history of a user, newest first.
        Index("ix_review_sessions_user_id_started_at", "user_id", "started_at"),
        {"comment": "One sitting of study by a user, usually over a single deck."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: sessions are the user's private history.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SET NULL: deleting a deck must not erase the user's study history and streak data.
    deck_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("decks.id", ondelete="SET NULL"),
        index=True,
        comment="Deck studied; NULL for mixed sessions or after the deck was deleted.",
    )
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    ended_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), comment="NULL while the session is still open."
    )
    cards_reviewed: Mapped[int] = _counter()
    cards_correct: Mapped[int] = _counter("Reviews rated >= 3.")
    summary: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        server_default=_EMPTY_JSONB,
        comment="Client-computed recap (rating histogram, XP earned, ...).",
    )
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class CardReview(Base):
    __tablename__ = "card_reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 0 AND 5", name="rating_range"),
        CheckConstraint("response_ms >= 0", name="response_ms_nonnegative"),
        CheckConstraint(
            "previous_interval_days >= 0 AND new_interval_days >= 0",
            name="intervals_nonnegative",
        ),
        CheckConstraint(
            "previous_ease_factor >= 1.3 AND new_ease_factor >= 1.3", name="ease_factors_min"
        ),
        # Per-user activity feed, heatmap and daily stats rebuilds.
        Index("ix_card_reviews_user_id_reviewed_at", "user_id", "reviewed_at"),
        # A card's review history; also serves the flashcard_id FK (cascades).
        Index("ix_card_reviews_flashcard_id_reviewed_at", "flashcard_id", "reviewed_at"),
        {"comment": "Append-only log: one row per card answered, with the SM-2 transition."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE (all three): a review is meaningless without its session, card or user.
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("review_sessions.id", ondelete="CASCADE"), index=True
    )
    flashcard_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flashcards.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        comment="Denormalised from the session for per-user time-range queries.",
    )
    rating: Mapped[int] = mapped_column(
        SmallInteger, comment="SM-2 quality of recall: 0 (blackout) .. 5 (perfect)."
    )
    response_ms: Mapped[int | None] = mapped_column(
        Integer, comment="Time from showing the card to answering, in milliseconds."
    )
    reviewed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    previous_interval_days: Mapped[int] = mapped_column(Integer)
    new_interval_days: Mapped[int] = mapped_column(Integer)
    previous_ease_factor: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    new_ease_factor: Mapped[Decimal] = mapped_column(Numeric(4, 2))


class DailyStudyStats(Base):
    __tablename__ = "daily_study_stats"
    __table_args__ = (
        UniqueConstraint("user_id", "day"),
        CheckConstraint("reviews >= 0", name="reviews_nonnegative"),
        CheckConstraint("correct >= 0 AND correct <= reviews", name="correct_range"),
        CheckConstraint("minutes >= 0", name="minutes_nonnegative"),
        CheckConstraint("new_cards >= 0", name="new_cards_nonnegative"),
        {"comment": "Per-user, per-day study totals (streaks, heatmap, goal tracking)."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: private analytics of the user.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date, comment="Calendar day in the user's time zone.")
    reviews: Mapped[int] = _counter()
    correct: Mapped[int] = _counter()
    minutes: Mapped[int] = _counter("Active study time, rounded to minutes.")
    new_cards: Mapped[int] = _counter("Cards seen for the first time that day.")
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class DeckStats(Base):
    __tablename__ = "deck_stats"
    __table_args__ = (
        CheckConstraint(
            "card_count >= 0 AND new_count >= 0 AND learning_count >= 0"
            " AND review_count >= 0 AND mastered_count >= 0 AND total_reviews >= 0",
            name="counts_nonnegative",
        ),
        CheckConstraint(
            "new_count + learning_count + review_count + mastered_count <= card_count",
            name="status_counts_le_card_count",
        ),
        CheckConstraint("retention_rate BETWEEN 0 AND 1", name="retention_rate_range"),
        {"comment": "Denormalised per-deck counters (1:1 with decks), refreshed after reviews."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: derived data; dies with its deck.
    deck_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("decks.id", ondelete="CASCADE"), unique=True, comment="1:1 with decks."
    )
    card_count: Mapped[int] = _counter()
    new_count: Mapped[int] = _counter()
    learning_count: Mapped[int] = _counter()
    review_count: Mapped[int] = _counter()
    mastered_count: Mapped[int] = _counter()
    total_reviews: Mapped[int] = _counter()
    retention_rate: Mapped[Decimal | None] = mapped_column(
        Numeric(5, 4), comment="Share of reviews rated >= 3 over the last 30 days (0..1)."
    )
    last_studied_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()

    deck: Mapped[Deck] = relationship(back_populates="stats")


class DeckSubscription(Base):
    __tablename__ = "deck_subscriptions"
    __table_args__ = (
        UniqueConstraint("user_id", "deck_id"),
        {"comment": "A user following someone else's public deck (one row per pair)."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: the subscriber's own bookkeeping.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # RESTRICT: a deck with subscribers must not vanish silently; the app first unpublishes it
    # and ends the subscriptions (notifying the subscribers), then deletes it.
    deck_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("decks.id", ondelete="RESTRICT"), index=True
    )
    notify_on_update: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("true"),
        comment="E-mail the subscriber when the owner edits the deck.",
    )
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class UserSession(Base):
    __tablename__ = "user_sessions"
    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        # Active sessions of a user ("log out everywhere", session list page).
        Index("ix_user_sessions_user_id_expires_at", "user_id", "expires_at"),
        {"comment": "Server-side login sessions / remember-me tokens."},
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # CASCADE: sessions of a deleted account are worthless.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(
        String(128), unique=True, comment="SHA-256 of the session token; the token is not stored."
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), comment="Set on logout; NULL while the session is valid."
    )
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()
