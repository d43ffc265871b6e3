"""The differ: SQL that takes one database's schema to another's.

migra does the heavy lifting (deploy/differ/migra_adapter.py) behind this small package, so
the engine could swap it. What migra gets wrong or leaves out but the fingerprint covers is
fixed by *repairs* (deploy/differ/repairs/, one module per object kind or problem, each
a named unit with its own tests): "how is X diffed" is answered in one file. Whatever still
differs after that, and has no SQL, is returned as `unexpressed`, so `diff(A, B)` is empty
exactly when the fingerprints are equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.migra_adapter import inspect_schema, migra_statements
from deploy.differ.repairs import REPAIRS
from deploy.differ.repairs._common import frozen_reads
from deploy.differ.sqltext import parse_memo
from deploy.fingerprint import (
    NOTHING_EXCLUDED,
    Description,
    Difference,
    Exclusions,
    compare,
    describe,
)

__all__ = ["Diff", "Side", "diff", "frozen_reads", "read_side"]


@dataclass(frozen=True)
class Diff:
    """The statements that take `from` to `target`, and differences they cannot express."""

    statements: list[str] = field(default_factory=list)
    unexpressed: list[Difference] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the two schemas are the same (no statements, nothing unexpressed)."""
        return not self.statements and not self.unexpressed

    @property
    def sql(self) -> str:
        """The statements as one script, a blank line between statements."""
        return "".join(s + "\n\n" for s in self.statements).rstrip("\n") + (
            "\n" if self.statements else ""
        )


@dataclass(frozen=True)
class Side:
    """One database as the differ reads it (migra's inspector and the fingerprint's
    description), read once for several diffs. Valid only while that database is unchanged."""

    inspector: object
    description: Description


def read_side(conn: Connection, exclusions: Exclusions = NOTHING_EXCLUDED,
              description: Description | None = None) -> Side:
    """What diff() reads of the database behind `conn`; `description` when the caller has it."""
    if description is None:
        description = describe(conn, exclusions)
    return Side(inspect_schema(conn, exclusions), description)


def diff(
    source: Connection,
    target: Connection,
    exclusions: Exclusions = NOTHING_EXCLUDED,
    *,
    online: bool = True,
    renamed: tuple[str, ...] = (),
    sides: tuple[Side | None, Side | None] = (None, None),
) -> Diff:
    """Return what takes the schema behind `source` to the one behind `target`.

    Both are SQLAlchemy connections (psycopg2); neither is modified. migra's statements go
    through every repair in `REPAIRS`, in order. `online` picks the forms that do not block
    writers for tables that exist in `source` (repairs/online.py). `renamed`: statements
    already run on `source` (a renamed copy of the real source), put first in the result.
    `sides`: read_side() of source and target, for databases diffed more than once.
    """
    before, after = sides
    statements = migra_statements(
        source, target, exclusions,
        (before.inspector if before else None, after.inspector if after else None))
    ctx = DiffContext(
        source=source,
        target=target,
        exclusions=exclusions,
        before=before.description if before else describe(source, exclusions),
        after=after.description if after else describe(target, exclusions),
        online=online,
        renamed=tuple(renamed),
    )
    with parse_memo():  # each statement text is parsed once for all the repairs
        for repair in REPAIRS:
            statements = repair.apply(ctx, statements)
    unexpressed = compare(ctx.before, ctx.after) if not statements else []
    return Diff(statements, unexpressed)
