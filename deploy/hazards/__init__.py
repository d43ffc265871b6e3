"""Classify plan statements into hazards a reviewer has to acknowledge.

Every statement is read from PostgreSQL's own parse tree (pglast). One module per kind of
statement says what is hazardous about it:

  drop.py         DROP …
  rename.py       RENAME, SET SCHEMA, enum value renames
  alter_table.py  ALTER TABLE subcommands
  domain.py       ALTER DOMAIN: checks and NOT NULL scan every column of the domain
  index.py        CREATE INDEX, REINDEX, VACUUM FULL, CLUSTER, REFRESH MATERIALIZED VIEW
  sequence.py     ALTER SEQUENCE … RESTART, setval() on a sequence the plan created
  dml.py          DELETE/UPDATE/INSERT/MERGE (also inside CTEs), TRUNCATE
  unverified.py   default-deny: DO, CALL, CREATE TABLE AS, calls, kinds no rule models
  squawk.py       squawk as a second opinion
  approval.py     the one decision "is this plan's every hazard approved?"
  names.py        names resolved as the server does (pg_temp, pinned search_path)

A hazard's text is what a reviewer copies into `-- approve: <text>`, so it only depends on
the statement itself and on what the plan did before it, never on line numbers.

The rules (and pglast with them) are imported on first use of a name below: `invoke apply`
at head only reads the hazard and approval records of plan headers (model.py), and must not
pay for the parser (issue 10).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy.hazards.approval import Review, review, unapproved
    from deploy.hazards.core import classify
    from deploy.hazards.model import (
        BACKWARD_INCOMPATIBLE,
        BLOCKS_WRITES,
        DELETES_DATA,
        KINDS,
        TABLE_REWRITE,
        UNVERIFIED,
        Approval,
        Hazard,
    )
    from deploy.hazards.squawk import SQUAWK_RULES, run_squawk

# Each public name -> the submodule that defines it.
_HOMES = {
    "Review": "approval", "review": "approval", "unapproved": "approval",
    "classify": "core",
    "BACKWARD_INCOMPATIBLE": "model", "BLOCKS_WRITES": "model", "DELETES_DATA": "model",
    "KINDS": "model", "TABLE_REWRITE": "model", "UNVERIFIED": "model", "Approval": "model",
    "Hazard": "model",
    "SQUAWK_RULES": "squawk", "run_squawk": "squawk",
}


def __getattr__(name: str) -> Any:
    """The public name from its submodule, imported now and kept here for later reads."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BACKWARD_INCOMPATIBLE",
    "BLOCKS_WRITES",
    "DELETES_DATA",
    "KINDS",
    "SQUAWK_RULES",
    "TABLE_REWRITE",
    "UNVERIFIED",
    "Approval",
    "Hazard",
    "Review",
    "classify",
    "review",
    "run_squawk",
    "unapproved",
]
