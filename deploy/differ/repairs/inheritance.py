"""Inherited columns: migra repeats a parent's columns in the child's `CREATE TABLE …
INHERITS (…)`, which makes them *local* columns of the child too (`attislocal`), so
pg_dump shows a different table and a later DROP COLUMN on the parent keeps them.

This repair removes, from each new table that inherits, the column definitions the target
has as inherited only; the child gets them (and their defaults) from its parent.
"""

from __future__ import annotations

from pglast import ast

from deploy.differ.context import DiffContext
from deploy.differ.migra_adapter import end_read_transactions
from deploy.differ.sqltext import deparse, parse_fresh, parse_one

_INHERITED_ONLY = """
SELECT n.nspname, c.relname, a.attname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND NOT a.attislocal AND NOT c.relispartition
  AND c.relkind IN ('r', 'p', 'f')
"""


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop inherited-only columns from migra's CREATE TABLE … INHERITS statements."""
    parsed = [parse_one(s) for s in statements]
    if not any(isinstance(n, ast.CreateStmt) and n.inhRelations and not n.partbound
               for n in parsed):
        return statements
    raw = ctx.target.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(_INHERITED_ONLY)
        inherited = {(schema, table, column) for schema, table, column in cur.fetchall()}
    end_read_transactions(ctx.target)
    result = []
    for statement, node in zip(statements, parsed, strict=True):
        if isinstance(node, ast.CreateStmt) and node.inhRelations and not node.partbound:
            table = (node.relation.schemaname or "public", node.relation.relname)
            kept = tuple(
                e for e in node.tableElts or ()
                if not (isinstance(e, ast.ColumnDef) and (*table, e.colname) in inherited)
            )
            if len(kept) != len(node.tableElts or ()):
                node = parse_fresh(statement)  # the parsed tree is shared: edit a copy
                node.tableElts = kept or None
                statement = deparse(node)
        result.append(statement)
    return result
