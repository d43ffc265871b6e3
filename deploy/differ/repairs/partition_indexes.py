"""Partition index attachment: migra creates an index on a partitioned table as
`CREATE INDEX … ON ONLY parent` (left invalid) and the partitions' indexes on their own,
but never attaches them (`ALTER INDEX … ATTACH PARTITION`).

Appends `ALTER INDEX parent_index ATTACH PARTITION partition_index` for every index the
target has attached that the source has not; once all partitions' indexes are attached,
PostgreSQL marks the parent index valid.
"""

from __future__ import annotations

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident, keys
from deploy.fingerprint import split_key


def _attached_to(attributes: str) -> str | None:
    for word in attributes.split(" "):
        if word.startswith("attached-to="):
            return word.removeprefix("attached-to=")
    return None


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append ALTER INDEX … ATTACH PARTITION for attachments the target has and source lacks."""
    before, after = keys(ctx.before, "index"), keys(ctx.after, "index")
    extra = []
    for key in sorted(after):
        parent = _attached_to(after[key])
        if parent is None or (key in before and _attached_to(before[key]) == parent):
            continue
        schema, _table, index = split_key(key)[:3]
        extra.append(f"ALTER INDEX {parent} ATTACH PARTITION {ident(schema)}.{ident(index)};")
    return statements + extra
