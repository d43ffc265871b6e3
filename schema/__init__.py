"""Cognition Curator database schema: the desired state the deployer diffs production against.

Tables come from SQLAlchemy models (``metadata``); views and triggers from ``schema/sql/*.sql``.
The deploy tool installs ``EXTENSIONS`` first (uuid-ossp provides uuid_generate_v4()).
"""

from schema.models import (
    NAMING_CONVENTION,
    Base,
    CardReview,
    CardStatus,
    DailyStudyStats,
    Deck,
    DeckStats,
    DeckSubscription,
    Flashcard,
    ReviewSession,
    User,
    UserSession,
    card_status,
    metadata,
)

EXTENSIONS: tuple[str, ...] = ("uuid-ossp",)

__all__ = [
    "EXTENSIONS",
    "NAMING_CONVENTION",
    "Base",
    "CardReview",
    "CardStatus",
    "DailyStudyStats",
    "Deck",
    "DeckStats",
    "DeckSubscription",
    "Flashcard",
    "ReviewSession",
    "User",
    "UserSession",
    "card_status",
    "metadata",
]
