"""The vocabulary of the gate: hazard kinds, what a hazard and an approval are, and what the
classifier remembers while it reads a plan from top to bottom."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # annotations only: reading a plan's hazards and approvals parses nothing
    from pglast import ast

DELETES_DATA = "DELETES_DATA"
TABLE_REWRITE = "TABLE_REWRITE"
BLOCKS_WRITES = "BLOCKS_WRITES"
BACKWARD_INCOMPATIBLE = "BACKWARD_INCOMPATIBLE"
# Default-deny: the statement's effect cannot be proven harmless from its parse tree (DML,
# DO blocks, calls, kinds the rules do not model). A reviewer must read it and approve it.
UNVERIFIED = "UNVERIFIED"
KINDS = (DELETES_DATA, TABLE_REWRITE, BLOCKS_WRITES, BACKWARD_INCOMPATIBLE, UNVERIFIED)
ALL_KINDS = frozenset(KINDS)

# Schema of the session's temporary objects (pg_temp_N on the server).
TEMP_SCHEMA = "pg_temp"
# Stands for "whatever search_path the plan set": a name resolved through it never matches
# an object the plan created, so nothing is exempted on a guess.
UNKNOWN_SCHEMA = "$search_path"


@dataclass(frozen=True)
class Hazard:
    kind: str  # one of KINDS
    text: str  # what follows "-- hazard: " in a plan header; starts with the kind
    line: int  # 1-based line of the statement in the classified text


@dataclass(frozen=True)
class Approval:
    text: str  # what follows "-- approve: "
    reason: str | None  # what follows " -- " on the approve line, if anything
    line: int


Key = tuple[str, str]  # (schema, name)
ColumnKey = tuple[str, str, str]  # (schema, table, column)


@dataclass
class PlanState:
    """What the plan has done so far: statements on objects it created carry no hazards."""

    relations: set[Key] = field(default_factory=set)
    types: set[Key] = field(default_factory=set)
    functions: set[Key] = field(default_factory=set)  # defined (or replaced) by this plan
    views: set[Key] = field(default_factory=set)  # (re)defined by this plan: reading runs them
    # Columns added to pre-existing tables, with their declared type when known.
    columns: dict[ColumnKey, ast.TypeName | None] = field(default_factory=dict)
    # Views and functions (re)created by each statement, to spot drop-then-recreate.
    creates: list[set[tuple]] = field(default_factory=list)
    # Whether each statement runs in the plan's transaction (a statement that does not,
    # such as CREATE INDEX CONCURRENTLY, commits everything before it).
    transactional: list[bool] = field(default_factory=list)
    # Sequences created in the transaction still open: nobody has drawn from them yet.
    fresh_sequences: set[Key] = field(default_factory=set)
    # How often the plan changed search_path (or ran code that may have). Unqualified names
    # then resolve to UNKNOWN_SCHEMA#n: the same unknown schema until the next change.
    search_path_changes: int = 0
    # NOT VALID `CHECK (col IS NOT NULL)` constraints the plan added: (table, name) -> column,
    # and the columns whose such check the plan then validated. SET NOT NULL on those uses
    # the check instead of scanning the table (PostgreSQL 12+): the online-safe form.
    not_null_checks: dict[tuple[Key, str], str] = field(default_factory=dict)
    validated_not_null: set[ColumnKey] = field(default_factory=set)

    def search_path_changed(self) -> None:
        self.search_path_changes += 1

    def recreated_after(self, index: int, key: tuple) -> bool:
        return any(key in created for created in self.creates[index + 1 :])

    def later_in_transaction(self, index: int, key: tuple) -> bool:
        """Whether a statement after `index`, before the next commit, (re)creates `key`."""
        for later in range(index + 1, len(self.creates)):
            if later < len(self.transactional) and not self.transactional[later]:
                return False
            if key in self.creates[later]:
                return True
        return False

    def new_sequences(self, keys: set[Key]) -> None:
        """Sequences a statement created (CREATE SEQUENCE, a named identity sequence)."""
        self.relations |= keys
        self.fresh_sequences |= keys


class Findings(NamedTuple):
    """A Result once its statement is done, compact and read only (kept per classified text)."""

    found: tuple[tuple[str, str], ...]
    decided: frozenset[str]


@dataclass
class Result:
    """Hazards found on one statement, and the kinds squawk may no longer add to it."""

    found: list[tuple[str, str]] = field(default_factory=list)  # (kind, verb phrase)
    decided: set[str] = field(default_factory=set)

    def add(self, phrase: str, *kinds: str) -> None:
        for kind in kinds:
            self.found.append((kind, phrase))
