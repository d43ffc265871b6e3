"""Column collations in new tables: migra's CREATE TABLE leaves out `COLLATE` (its ADD
COLUMN and ALTER COLUMN keep it).

For every table the statements create, each column whose collation is not its type's
default gets `ALTER TABLE … ALTER COLUMN … TYPE <type> COLLATE <collation>` right after the
CREATE TABLE (the table is still empty; views and indexes on it come later).
"""

from __future__ import annotations

from pglast import ast

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import created_relations, ident, node, rows, skip_schemas

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.relname), a.attname,
       format_type(a.atttypid, a.atttypmod),
       (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
        JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
  AND a.attcollation <> 0 AND a.attcollation <> t.typcollation
  AND n.nspname <> ALL(%(skip)s)
ORDER BY 1, a.attnum
"""


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Insert ALTER COLUMN … COLLATE after each CREATE TABLE whose columns need one."""
    created = created_relations(statements)
    if not created:
        return statements
    fixes: dict[str, list[str]] = {}
    for table, column, type_name, collation in rows(
        ctx.target, _QUERY, {"skip": skip_schemas(ctx.exclusions)}
    ):
        if table in created:
            fixes.setdefault(table, []).append(
                f"ALTER TABLE {table} ALTER COLUMN {ident(column)} TYPE {type_name} "
                f"COLLATE {collation};"
            )
    result = []
    for statement in statements:
        result.append(statement)
        tree = node(statement)
        if isinstance(tree, ast.CreateStmt):
            rv = tree.relation
            result += fixes.pop(f"{ident(rv.schemaname or 'public')}.{ident(rv.relname)}", [])
    return result
