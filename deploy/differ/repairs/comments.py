"""Comments: migra has no COMMENT ON at all; this repair adds every change.

Only objects that exist in the target get a statement; those are created (if new) by the
statements that come before these. An object the statements drop and create again (a view
migra re-creates, a re-added constraint, a re-typed enum's dependents) loses its comment
with the drop, so its comment is written again even when source and target agree.
"""

from __future__ import annotations

from pglast import ast, enums
from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.migra_adapter import end_read_transactions
from deploy.differ.sqltext import ident, parse_one, qualified
from deploy.fingerprint import Exclusions, split_key


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append the COMMENT ON statements that make the source's comments the target's,
    counting objects the statements drop as having none."""
    return statements + comment_statements(
        ctx.source, ctx.target, ctx.exclusions, dropped_names(statements)
    )


def dropped_names(statements: list[str]) -> set[str]:
    """Names (`schema.name`, `schema.table.part`) of what the statements drop: a dropped
    table or view takes the comments of its columns, constraints, … along."""
    names: set[str] = set()
    for statement in statements:
        node = parse_one(statement)
        if isinstance(node, ast.DropStmt):
            for obj in node.objects or ():
                if isinstance(obj, ast.ObjectWithArgs):
                    parts = [n.sval for n in obj.objname]
                elif isinstance(obj, ast.TypeName):
                    parts = [n.sval for n in obj.names]
                elif isinstance(obj, tuple):
                    parts = [n.sval for n in obj if isinstance(n, ast.String)]
                else:
                    continue
                if len(parts) == 1 and node.removeType != enums.ObjectType.OBJECT_SCHEMA:
                    parts.insert(0, "public")
                names.add(".".join(ident(p) for p in parts))
        elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            table = qualified(node.relation.schemaname or "public", node.relation.relname)
            for cmd in node.cmds or ():
                if cmd.subtype in (enums.AlterTableType.AT_DropColumn,
                                   enums.AlterTableType.AT_DropConstraint) and cmd.name:
                    names.add(f"{table}.{ident(cmd.name)}")
    return names


def _is_dropped(key: str, dropped: set[str]) -> bool:
    name = key.partition(" ")[2]
    if any(name == d or name.startswith(d + ".") for d in dropped):
        return True
    # A function is dropped by signature; any overload of a dropped name counts (a
    # comment written again is harmless).
    return name.partition("(")[0] in dropped if "(" in name else False


# For each commentable object: a stable key, the COMMENT ON target, and the comment.
_COMMENTS_QUERY = """
SELECT 'relation ' || format('%%I.%%I', n.nspname, c.relname),
       CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW '
            WHEN 'f' THEN 'FOREIGN TABLE ' WHEN 'S' THEN 'SEQUENCE ' WHEN 'i' THEN 'INDEX '
            WHEN 'I' THEN 'INDEX ' ELSE 'TABLE ' END || format('%%I.%%I', n.nspname, c.relname),
       d.description
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
     AND d.objsubid = 0
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'i', 'I') AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'column ' || format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
       'COLUMN ' || format('%%I.%%I.%%I', n.nspname, c.relname, a.attname), d.description
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
     AND d.objsubid = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
  AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'schema ' || format('%%I', n.nspname), 'SCHEMA ' || format('%%I', n.nspname), d.description
FROM pg_namespace n
LEFT JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass
WHERE n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'type ' || format('%%I.%%I', n.nspname, t.typname),
       CASE t.typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END
       || format('%%I.%%I', n.nspname, t.typname), d.description
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class c ON c.oid = t.typrelid
LEFT JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_type'::regclass
WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c')
  AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'function ' || format('%%I.%%I(%%s)', n.nspname, p.proname,
                             pg_get_function_identity_arguments(p.oid)),
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' WHEN 'a' THEN 'AGGREGATE ' ELSE 'FUNCTION ' END
       || format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       d.description
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'constraint '
       || format('%%I.%%I.%%I', n.nspname, COALESCE(c.relname, t.typname), con.conname),
       format('CONSTRAINT %%I ON ', con.conname)
       || CASE WHEN con.conrelid <> 0 THEN format('%%I.%%I', n.nspname, c.relname)
               ELSE format('DOMAIN %%I.%%I', n.nspname, t.typname) END,
       d.description
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
LEFT JOIN pg_class c ON c.oid = con.conrelid
LEFT JOIN pg_type t ON t.oid = con.contypid
LEFT JOIN pg_description d ON d.objoid = con.oid AND d.classoid = 'pg_constraint'::regclass
WHERE n.nspname <> ALL(%(skip)s) AND (con.conrelid <> 0 OR con.contypid <> 0)
UNION ALL
SELECT 'trigger ' || format('%%I.%%I.%%I', n.nspname, c.relname, tg.tgname),
       format('TRIGGER %%I ON %%I.%%I', tg.tgname, n.nspname, c.relname), d.description
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = tg.oid AND d.classoid = 'pg_trigger'::regclass
WHERE NOT tg.tgisinternal AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'policy ' || format('%%I.%%I.%%I', n.nspname, c.relname, p.polname),
       format('POLICY %%I ON %%I.%%I', p.polname, n.nspname, c.relname), d.description
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass
WHERE n.nspname <> ALL(%(skip)s)
"""


def _comments(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, str | None]]:
    skip = ["pg_catalog", "information_schema", "pg_toast", *exclusions.schemas]
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(_COMMENTS_QUERY, {"skip": skip})
        rows = cur.fetchall()
    return {key: (target, comment) for key, target, comment in rows}


def comment_statements(
    source: Connection,
    target: Connection,
    exclusions: Exclusions,
    dropped: set[str] | None = None,
) -> list[str]:
    """COMMENT ON statements that make `source`'s comments equal `target`'s (migra has none).

    Only objects that exist in `target` get a statement; those are created (if new) by the
    statements that come before these.
    """
    before = _comments(source, exclusions)
    after = _comments(target, exclusions)
    statements = []
    for key in sorted(after):
        object_sql, comment = after[key]
        old = before.get(key, (None, None))[1]
        if dropped and _is_dropped(key, dropped):
            before.pop(key, None)
            old = None
        if comment == old or (key not in before and comment is None):
            continue
        if _excluded_key(key, exclusions):
            continue
        statements.append(f"COMMENT ON {object_sql} IS {_literal(comment)};")
    end_read_transactions(source, target)
    return statements


def _excluded_key(key: str, exclusions: Exclusions) -> bool:
    kind, _, name = key.partition(" ")
    parts = split_key(name)
    if kind in ("relation", "column", "constraint", "trigger", "policy") and len(parts) >= 2:
        return exclusions.skips_table(parts[0], parts[1])
    return False


def _literal(text: str | None) -> str:
    if text is None:
        return "NULL"
    return "'" + text.replace("'", "''") + "'"
