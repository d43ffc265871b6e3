"""Enum values: added in place with `ALTER TYPE … ADD VALUE`, not by re-creating the type.

For any change of an enum's labels migra renames the type away, creates the new one,
re-types every column through `::text` (a table rewrite under an exclusive lock) and drops
the old type. When the change only *adds* labels (the old ones keep their order) this
repair replaces all of that with `ALTER TYPE … ADD VALUE IF NOT EXISTS … BEFORE/AFTER …`,
which rewrites nothing. Removals and reorders keep migra's re-create (a DELETES_DATA
hazard: rows holding a removed label make it fail).

ADD VALUE runs outside the plan's transaction (deploy/statements.py): a value added in a
transaction cannot be used in it (a later `SET DEFAULT 'new'` would fail), and
IF NOT EXISTS makes a resumed plan skip what already ran.

(Labels with quotes are quoted by the adapter: deploy/differ/migra_adapter.py.)
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.migra_adapter import end_read_transactions
from deploy.differ.sqltext import literal, parse_one, qualified
from deploy.statements import qualified_name

_SUFFIX = "__old_version_to_be_dropped"  # migra's name for the renamed-away type

_LABELS = """
SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
GROUP BY 1, 2
"""


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Replace migra's re-create of each enum that only gains labels by ADD VALUE."""
    parsed = [parse_one(s) for s in statements]
    renamed = {
        qualified_name(node.object): index for index, node in enumerate(parsed)
        if isinstance(node, ast.RenameStmt) and node.renameType == enums.ObjectType.OBJECT_TYPE
        and node.newname.endswith(_SUFFIX)
    } if any(isinstance(n, ast.RenameStmt) for n in parsed) else {}
    if not renamed:
        return statements
    before, after = labels(ctx.source), labels(ctx.target)
    end_read_transactions(ctx.source, ctx.target)
    replace: dict[int, list[str]] = {}
    drop: set[int] = set()
    for enum, index in renamed.items():
        old, new = before.get(enum), after.get(enum)
        if old is None or new is None or [v for v in new if v in old] != old:
            continue  # a removal or reorder: keep the re-create
        replace[index] = add_value_statements(qualified(*enum), old, new)
        drop |= _recreate_statements(parsed, enum)
    # First in the plan: each ADD VALUE commits on its own, and an early commit of some
    # other statement (a dropped view, say) would leave a half-applied plan behind.
    added = [s for index in sorted(replace) for s in replace[index]]
    return added + [s for i, s in enumerate(statements) if i not in replace and i not in drop]


def labels(conn: object) -> dict[tuple[str, str], list[str]]:
    """Every enum's labels in sort order, by (schema, name)."""
    raw = conn.connection.dbapi_connection  # type: ignore[attr-defined]
    with raw.cursor() as cur:
        cur.execute(_LABELS)
        return {(schema, name): list(values) for schema, name, values in cur.fetchall()}


def add_value_statements(type_sql: str, old: list[str], new: list[str]) -> list[str]:
    """ADD VALUE statements that turn labels `old` into `new` (which keeps `old` in order)."""
    statements = []
    present = list(old)
    for position, value in enumerate(new):
        if value in present:
            continue
        if position > 0:
            where = f" AFTER {literal(new[position - 1])}"
        elif present:
            where = f" BEFORE {literal(present[0])}"
        else:
            where = ""
        statements.append(f"ALTER TYPE {type_sql} ADD VALUE IF NOT EXISTS {literal(value)}{where};")
        present.insert(position, value)
    return statements


def _recreate_statements(parsed: list[object], enum: tuple[str, str]) -> set[int]:
    """Indexes of migra's statements that re-create `enum` and re-type its columns."""
    drop: set[int] = set()
    retyped: set[tuple[tuple[str, str], str]] = set()
    for index, node in enumerate(parsed):
        if isinstance(node, ast.CreateEnumStmt) and qualified_name(node.typeName) == enum:
            drop.add(index)
        elif isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_TYPE:
            names = [qualified_name(t.names) for t in node.objects]
            if names == [(enum[0], enum[1] + _SUFFIX)]:
                drop.add(index)
        elif isinstance(node, ast.AlterTableStmt) and len(node.cmds or ()) == 1:
            cmd = node.cmds[0]
            if (cmd.subtype == enums.AlterTableType.AT_AlterColumnType
                    and qualified_name(cmd.def_.typeName.names) == enum):
                drop.add(index)
                retyped.add(((node.relation.schemaname or "public", node.relation.relname),
                             cmd.name))
    # migra drops a re-typed column's default before and restores the old one after.
    restored: set[tuple[tuple[str, str], str]] = set()
    for index, node in enumerate(parsed):
        if not (isinstance(node, ast.AlterTableStmt) and len(node.cmds or ()) == 1):
            continue
        cmd = node.cmds[0]
        column = ((node.relation.schemaname or "public", node.relation.relname), cmd.name)
        if cmd.subtype != enums.AlterTableType.AT_ColumnDefault or column not in retyped:
            continue
        if cmd.def_ is None and column not in restored:
            drop.add(index)
            restored.add(column)
        elif cmd.def_ is not None and column in restored:
            drop.add(index)
            retyped.discard(column)
    return drop
