"""What a repair may look at: both connections, both descriptions, the exclusions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from deploy.fingerprint import Description, Exclusions


@dataclass
class DiffContext:
    """Inputs shared by every repair of one diff. Repairs must not modify either database."""

    source: Connection  # the schema the statements start from
    target: Connection  # the schema they must reach
    exclusions: Exclusions
    before: Description  # canonical description of `source`
    after: Description  # canonical description of `target`
    # Online-safe forms for tables that exist before the plan (repairs/online.py).
    online: bool = True
    # Renames already run on `source` (repairs/renames.py): the plan must start with them.
    renamed: tuple[str, ...] = ()
