"""Partition index attachment: migra creates an index on a partitioned table as
`CREATE INDEX … ON ONLY parent` (left invalid) and the partitions' indexes on their own,
but never attaches them (`ALTER INDEX … ATTACH PARTITION`).

Appends `ALTER INDEX parent_index ATTACH PARTITION partition_index` for every index the
target has attached that the source has not; once all partitions' indexes are attached,
PostgreSQL marks the parent index valid. In the other direction migra drops the partitions'
indexes and then the parent's, but an attached index cannot be dropped on its own: those
drops are removed (dropping the parent index drops them).
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident, keys, node
from deploy.fingerprint import split_key


def _attached_to(attributes: str) -> str | None:
    for word in attributes.split(" "):
        if word.startswith("attached-to="):
            return word.removeprefix("attached-to=")
    return None


def _dropped_indexes(statement: str) -> list[str]:
    tree = node(statement)
    if not isinstance(tree, ast.DropStmt) or tree.removeType != enums.ObjectType.OBJECT_INDEX:
        return []
    names = []
    for name in tree.objects or ():
        parts = [p.sval for p in name]
        names.append(".".join(ident(p) for p in (["public", *parts] if len(parts) == 1 else parts)))
    return names


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append ALTER INDEX … ATTACH PARTITION for attachments the target has and source lacks;
    leave out drops of attached indexes whose parent index is dropped too."""
    before, after = keys(ctx.before, "index"), keys(ctx.after, "index")
    dropped = {name for s in statements for name in _dropped_indexes(s)}
    implied = set()
    for key, attributes in before.items():
        parent = _attached_to(attributes)
        schema, _table, index = split_key(key)[:3]
        if parent in dropped:
            implied.add(f"{ident(schema)}.{ident(index)}")
    statements = [s for s in statements
                  if not (_dropped_indexes(s) and set(_dropped_indexes(s)) <= implied)]
    extra = []
    for key in sorted(after):
        parent = _attached_to(after[key])
        if parent is None or (key in before and _attached_to(before[key]) == parent):
            continue
        schema, _table, index = split_key(key)[:3]
        extra.append(f"ALTER INDEX {parent} ATTACH PARTITION {ident(schema)}.{ident(index)};")
    return statements + extra
