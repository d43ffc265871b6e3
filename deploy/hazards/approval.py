"""The one place that decides whether a plan's hazards are approved (apply and check both
ask here, so they cannot disagree)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deploy.hazards.model import Approval, Hazard


@dataclass(frozen=True)
class Review:
    """A plan's hazards, each with the approval that matches it (or None), and the approval
    lines that match no hazard of the SQL."""

    hazards: tuple[tuple[Hazard, Approval | None], ...]
    unused: tuple[Approval, ...]

    @property
    def missing(self) -> list[Hazard]:
        """Hazards without an approval, in the order of the plan."""
        return [hazard for hazard, approval in self.hazards if approval is None]


def review(
    sql: str, approvals: Iterable[Approval], *, use_squawk: bool = True,
    hazards: Sequence[Hazard] | None = None,
) -> Review:
    """Classify the plan body (unless its `hazards` are given, e.g. from the cache) and match
    each hazard to an `-- approve:` line (texts compared after stripping surrounding blanks).
    Raises StatementError when the SQL does not parse."""
    from deploy.hazards.core import classify  # core imports every rule module

    approvals = list(approvals)
    if hazards is None:
        hazards = classify(sql, use_squawk=use_squawk)
    by_text = {a.text.strip(): a for a in approvals}
    found = {h.text.strip() for h in hazards}
    return Review(
        hazards=tuple((h, by_text.get(h.text.strip())) for h in hazards),
        unused=tuple(a for a in approvals if a.text.strip() not in found),
    )


def unapproved(hazards: Sequence[Hazard], approvals: Iterable[Approval]) -> list[Hazard]:
    """The hazards no approval matches (texts compared after stripping surrounding blanks)."""
    approved = {a.text.strip() for a in approvals}
    return [h for h in hazards if h.text.strip() not in approved]
