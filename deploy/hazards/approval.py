"""The one place that decides whether a plan's hazards are approved (apply and check both
ask here, so they cannot disagree)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deploy.hazards.model import BACKWARD_INCOMPATIBLE, Approval, Hazard


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


# The reason shown for a hazard that its place in a plan's contract part satisfies.
PLACED_REASON = "in the contract part: runs in a later deploy, after the old code is gone"


def review(
    sql: str, approvals: Iterable[Approval], *, use_squawk: bool = True,
    hazards: Sequence[Hazard] | None = None,
) -> Review:
    """Classify the plan body (unless its `hazards` are given, e.g. from the cache) and match
    each hazard to an `-- approve:` line (texts compared after stripping surrounding blanks).

    In a two-part plan (the body has the `-- phase: contract` line), a BACKWARD_INCOMPATIBLE
    hazard below that line needs no approval line: the contract part runs in a later deploy
    than the one that ships the new code, when no old code is left to break. Every other
    hazard (the data a drop loses, a rewrite, …) needs its approval in either part.
    Raises StatementError when the SQL does not parse."""
    from deploy.hazards.core import classify  # core imports every rule module
    from deploy.plans import CONTRACT_MARKER  # plans imports this package

    approvals = list(approvals)
    if hazards is None:
        hazards = classify(sql, use_squawk=use_squawk)
    marker = next((number for number, line in enumerate(sql.split("\n"), start=1)
                   if line.strip() == CONTRACT_MARKER), None)
    by_text = {a.text.strip(): a for a in approvals}
    found = {h.text.strip() for h in hazards}

    def approval_of(hazard: Hazard) -> Approval | None:
        given = by_text.get(hazard.text.strip())
        if given is None and marker is not None and hazard.line > marker and (
                hazard.kind == BACKWARD_INCOMPATIBLE):
            return Approval(hazard.text, PLACED_REASON, marker)
        return given

    return Review(
        hazards=tuple((h, approval_of(h)) for h in hazards),
        unused=tuple(a for a in approvals if a.text.strip() not in found),
    )


def unapproved(hazards: Sequence[Hazard], approvals: Iterable[Approval]) -> list[Hazard]:
    """The hazards no approval matches (texts compared after stripping surrounding blanks)."""
    approved = {a.text.strip() for a in approvals}
    return [h for h in hazards if h.text.strip() not in approved]
