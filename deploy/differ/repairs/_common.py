"""Small helpers the repairs share: catalog reads, identifier quoting, statement shapes.

Names are written the way the fingerprint writes them (`format('%I.%I')`), so a repair can
match catalog rows, description keys and parsed statements by plain string equality.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from pglast import ast, enums, keywords
from sqlalchemy import Connection
from sqlalchemy.engine import URL, make_url

from deploy.differ.sqltext import parse_one
from deploy.fingerprint import Exclusions, split_key

_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def ident(name: str) -> str:
    """Quote an identifier as PostgreSQL's %I does (plain lower-case names stay bare)."""
    if _PLAIN.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


# %I quotes every keyword that is not unreserved.
_RESERVED = keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS | (
    keywords.TYPE_FUNC_NAME_KEYWORDS
)


# Catalog reads of databases the caller promised not to change (frozen_reads): the planner
# diffs "desired" up to three times (models from empty, base to models, the reverse), and
# column options alone are a 16k-row read per side at 2000 tables.
_FROZEN: dict[str, dict[tuple[str, str], list[tuple]]] = {}


@contextmanager
def frozen_reads(databases: Iterable[object]) -> Iterator[None]:
    """Within the block, rows() reads each of these databases (URLs) once per query: the
    caller promises that none of them changes inside it."""
    keys = [_database_key(url) for url in databases]
    for key in keys:
        _FROZEN.setdefault(key, {})
    try:
        yield
    finally:
        for key in keys:
            _FROZEN.pop(key, None)


def _database_key(url: object) -> str:
    rendered = make_url(str(url)) if not isinstance(url, URL) else url
    host = rendered.query.get("host", rendered.host)
    return f"{host}:{rendered.port or rendered.query.get('port')}/{rendered.database}"


def rows(conn: Connection, sql: str, params: Mapping[str, object] | None = None) -> list[tuple]:
    """Rows of a catalog query, with search_path pinned to pg_catalog so that printed names
    are schema-qualified (as in the fingerprint). Ends the read transaction it opened.
    Inside frozen_reads() a database's answer to the same query is read once."""
    memo = _FROZEN.get(_database_key(conn.engine.url)) if _FROZEN else None
    key = (sql, repr(sorted((params or {}).items())))
    if memo is not None and key in memo:
        return list(memo[key])
    result = _read_rows(conn, sql, params)
    if memo is not None:
        memo[key] = result
    return list(result)


def _read_rows(conn: Connection, sql: str, params: Mapping[str, object] | None) -> list[tuple]:
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        cur.execute(sql, dict(params or {}))
        result = cur.fetchall()
    raw.rollback()
    if conn.in_transaction():
        conn.rollback()
    return result


def server_version(conn: Connection) -> int:
    """The server's version number (150004 for 15.4)."""
    return int(conn.connection.dbapi_connection.server_version)


def skip_schemas(exclusions: Exclusions) -> list[str]:
    """Schemas no repair looks into: the server's own and the excluded ones."""
    return ["pg_catalog", "information_schema", "pg_toast", *exclusions.schemas]


def keys(description: Mapping[str, str], kind: str) -> dict[str, str]:
    """The entries of one kind, keyed by object name (the kind prefix removed)."""
    prefix = kind + " "
    return {k[len(prefix):]: v for k, v in description.items() if k.startswith(prefix)}


def node(statement: str) -> ast.Node | None:
    """The parse tree of a single statement, or None when it does not parse as one (shared
    within a diff: read it, never modify it)."""
    return parse_one(statement)


def _range_var(rv: ast.RangeVar | None) -> str | None:
    if rv is None:
        return None
    return f"{ident(rv.schemaname or 'public')}.{ident(rv.relname)}"


def created_relations(statements: Iterable[str]) -> set[str]:
    """Relations the statements create or replace (tables, views, materialized views,
    indexes): their options, rules and column settings start from the defaults again."""
    names: set[str] = set()
    for statement in statements:
        tree = node(statement)
        if isinstance(tree, ast.CreateStmt):
            names.add(_range_var(tree.relation) or "")
        elif isinstance(tree, ast.ViewStmt):
            names.add(_range_var(tree.view) or "")
        elif isinstance(tree, ast.CreateTableAsStmt) and tree.into is not None:
            names.add(_range_var(tree.into.rel) or "")
        elif isinstance(tree, ast.IndexStmt) and tree.idxname:
            schema = tree.relation.schemaname or "public"
            names.add(f"{ident(schema)}.{ident(tree.idxname)}")
    names.discard("")
    return names


def dropped_types(statement: str) -> list[str]:
    """Names of the types a DROP TYPE / DROP DOMAIN statement drops ([] for others)."""
    tree = node(statement)
    if not isinstance(tree, ast.DropStmt) or tree.removeType not in (
        enums.ObjectType.OBJECT_TYPE, enums.ObjectType.OBJECT_DOMAIN
    ):
        return []
    names = []
    for type_name in tree.objects or ():
        parts = [p.sval for p in type_name.names]
        names.append(".".join(ident(p) for p in (["public", *parts] if len(parts) == 1 else parts)))
    return names


# Statements migra puts first that never depend on user types, and the domains and range
# types this package creates there: composite types (which may use both) go after them.
_LEADING = (ast.CreateSchemaStmt, ast.CreateExtensionStmt, ast.CreateEnumStmt,
            ast.AlterEnumStmt, ast.CreateSeqStmt, ast.CreateDomainStmt, ast.AlterDomainStmt,
            ast.CreateRangeStmt)


def leading_position(statements: list[str]) -> int:
    """Index after migra's leading schema/extension/collation/enum/sequence statements: where
    types that tables and functions use must be created."""
    for index, statement in enumerate(statements):
        tree = node(statement)
        if isinstance(tree, _LEADING):
            continue
        if isinstance(tree, ast.DefineStmt) and tree.kind == enums.ObjectType.OBJECT_COLLATION:
            continue
        return index
    return len(statements)


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def option_map(options: Iterable[str] | None) -> dict[str, str]:
    """`['fillfactor=70', …]` (reloptions, attoptions) as a mapping."""
    result = {}
    for item in options or ():
        name, _, value = item.partition("=")
        result[name] = value
    return result


def option_changes(old: Mapping[str, str], new: Mapping[str, str], prefix: str = "") -> list[str]:
    """`RESET (…)` / `SET (…)` clauses, one per statement, that turn option list `old` into
    `new`, order included: SET keeps the untouched options in place and appends the ones it
    names, so when that cannot give `new`'s order everything is reset and set again."""
    removed = [name for name in old if name not in new]
    changed = [name for name in new if old.get(name) != new[name]]
    predicted = [n for n in old if n not in removed and n not in changed] + changed
    if predicted != list(new):
        removed, changed = list(old), list(new)
    clauses = []
    if removed:
        clauses.append("RESET (" + ", ".join(prefix + n for n in removed) + ")")
    if changed:
        clauses.append(
            "SET (" + ", ".join(f"{prefix}{n} = {literal(new[n])}" for n in changed) + ")"
        )
    return clauses


def excluded(exclusions: Exclusions, name: str) -> bool:
    """True when `schema.table` (as %I-quoted text) is an excluded table."""
    parts = split_key(name)
    return len(parts) >= 2 and exclusions.skips_table(parts[0], parts[1])


def comment_sql(object_sql: str, comment: str | None) -> str:
    """`COMMENT ON <object> IS '…';` (NULL removes it)."""
    return f"COMMENT ON {object_sql} IS {'NULL' if comment is None else literal(comment)};"
