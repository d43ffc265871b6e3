"""Generated columns whose expression changes: migra writes `ALTER COLUMN … SET DEFAULT
(new expression)`, which PostgreSQL refuses for a generated column.

Before PostgreSQL 17 there is no `SET EXPRESSION`, so this repair re-creates the column:
`DROP COLUMN` then `ADD COLUMN … GENERATED ALWAYS AS (…) STORED` with the target's type and
expression. The values are derived, so nothing is lost, but the drop is still reported as a
DELETES_DATA hazard (views or indexes on the column would have to be re-created too; the
proof refuses the plan if they are not).
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.migra_adapter import end_read_transactions
from deploy.differ.sqltext import ident, parse_one, qualified

_GENERATED = """
SELECT format('%I.%I', n.nspname, c.relname), a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attgenerated <> '' AND NOT a.attisdropped
"""


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Replace SET DEFAULT on a column generated in the target by drop + add generated."""
    if not any(" generated=" in value for value in ctx.after.values()):
        return statements
    raw = ctx.target.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(_GENERATED)
        generated = {(table, column): (type_, notnull, expr)
                     for table, column, type_, notnull, expr in cur.fetchall()}
    end_read_transactions(ctx.target)
    result = []
    for statement in statements:
        result += _rewrite(statement, generated)
    return result


def _rewrite(statement: str, generated: dict[tuple[str, str], tuple[str, bool, str]]) -> list[str]:
    node = parse_one(statement)
    if not (isinstance(node, ast.AlterTableStmt) and len(node.cmds or ()) == 1):
        return [statement]
    cmd = node.cmds[0]
    if cmd.subtype != enums.AlterTableType.AT_ColumnDefault or cmd.def_ is None:
        return [statement]
    table = qualified(node.relation.schemaname or "public", node.relation.relname)
    if (table, cmd.name) not in generated:
        return [statement]
    column_type, not_null, expression = generated[(table, cmd.name)]
    return [
        f"ALTER TABLE {table} DROP COLUMN {ident(cmd.name)};",
        f"ALTER TABLE {table} ADD COLUMN {ident(cmd.name)} {column_type}"
        f"{' NOT NULL' if not_null else ''} GENERATED ALWAYS AS ({expression}) STORED;",
    ]
