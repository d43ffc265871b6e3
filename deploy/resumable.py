"""Statements that run outside a transaction, made safe to run again after a crash.

Such a statement commits on its own, and a run killed right after it (before its step was
recorded) re-runs it on resume. So each kind the runner accepts is either made idempotent
here, or refused when the plan is read (by `plan`, `check` and `apply` alike):

- CREATE INDEX CONCURRENTLY <name>: a valid index of that name is skipped; an INVALID
  leftover of a killed build is dropped and built again.
- CREATE INDEX CONCURRENTLY without a name: refused (a killed build leaves an index whose
  server-chosen name nobody knows, and a re-run adds a duplicate).
- DROP INDEX CONCURRENTLY: an index already gone is skipped.
- REINDEX INDEX/TABLE … CONCURRENTLY: INVALID `*_ccnew*` / `*_ccold*` copies a killed run
  left on the table are dropped first.
- REINDEX SCHEMA (not concurrently), VACUUM, ANALYZE: idempotent as they are.
- ALTER TYPE … ADD VALUE (run on its own so the new label is committed before a later step
  uses it): a label an earlier run already added is skipped.
- Anything else (REINDEX DATABASE/SYSTEM, REINDEX SCHEMA CONCURRENTLY, DETACH PARTITION
  CONCURRENTLY, databases, tablespaces, subscriptions, ALTER SYSTEM): refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg2 import sql as pgsql

from deploy.lazy import lazy_module
from deploy.statements import Statement, option_enabled, parse

if TYPE_CHECKING:
    from pglast import ast, enums
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())



def refusal(statement: Statement, node: ast.Node | None = None) -> str | None:
    """Why a statement that runs outside a transaction cannot be resumed safely, else None.
    `node` is its parse tree when the caller has it (else the statement is parsed)."""
    if statement.transactional:
        return None
    if node is None:
        node = _node(statement)
    if isinstance(node, ast.IndexStmt):
        if not node.idxname:
            return ("an unnamed CREATE INDEX CONCURRENTLY cannot be resumed: if the run is "
                    "killed during the build, the server-chosen name of the half-built index is "
                    "unknown and a re-run leaves a duplicate. Name the index (CREATE INDEX "
                    "CONCURRENTLY <name> ON …)")
        return None
    if isinstance(node, ast.DropStmt):
        return None  # DROP INDEX CONCURRENTLY: the only concurrent DROP
    if isinstance(node, ast.ReindexStmt):
        concurrent = option_enabled(node.params, "concurrently")
        if concurrent and node.kind in (enums.ReindexObjectType.REINDEX_OBJECT_INDEX,
                                        enums.ReindexObjectType.REINDEX_OBJECT_TABLE):
            return None
        if not concurrent and node.kind == enums.ReindexObjectType.REINDEX_OBJECT_SCHEMA:
            return None
        return ("this REINDEX cannot be resumed safely from a plan (a killed REINDEX SCHEMA/"
                "DATABASE/SYSTEM CONCURRENTLY leaves copies of many indexes behind). Use "
                "REINDEX INDEX … CONCURRENTLY or REINDEX TABLE … CONCURRENTLY, or run it by "
                "hand outside the deploy")
    if isinstance(node, ast.VacuumStmt):
        return None
    if isinstance(node, ast.AlterEnumStmt) and node.newVal is not None and node.oldVal is None:
        return None
    return ("this statement runs outside a transaction and cannot be made safe to re-run after "
            "a crash (a killed DETACH PARTITION CONCURRENTLY stays pending; databases, "
            "tablespaces, subscriptions and server settings are not schema changes). Use the "
            "transactional form (e.g. DETACH PARTITION without CONCURRENTLY), or run it by "
            "hand outside the deploy")


def prepare(cur: object, statement: Statement) -> bool:
    """Make a (re-)run of a non-transactional statement safe; False means skip the statement.

    Runs in autocommit on the plan's connection, so names resolve as the statement's will.
    """
    node = _node(statement)
    if isinstance(node, ast.IndexStmt) and node.concurrent and node.idxname:
        return _prepare_index_build(cur, node)
    if isinstance(node, ast.DropStmt) and node.concurrent and not node.missing_ok:
        # Already dropped by a run that died before recording the step: nothing to do.
        names = [_regclass_text(obj) for obj in node.objects or ()]
        return any(_resolve(cur, name) is not None for name in names)
    if isinstance(node, ast.ReindexStmt) and option_enabled(node.params, "concurrently"):
        _drop_reindex_leftovers(cur, node)
    if isinstance(node, ast.AlterEnumStmt) and node.newVal is not None and node.oldVal is None:
        return not _enum_has_label(cur, _regclass_text(node.typeName), node.newVal)
    return True


def _enum_has_label(cur: object, type_name: str, label: str) -> bool:
    """Whether the enum type (resolved as the statement would) already has `label`."""
    cur.execute(  # type: ignore[attr-defined]
        "SELECT EXISTS (SELECT 1 FROM pg_enum WHERE enumtypid = to_regtype(%s) "
        "AND enumlabel = %s)",
        (type_name, label),
    )
    return bool(cur.fetchone()[0])  # type: ignore[attr-defined]


def _node(statement: Statement) -> ast.Node | None:
    parsed = parse(statement.sql)
    return parsed[0].node if len(parsed) == 1 else None


def _regclass_text(names: object) -> str:
    """The quoted, possibly schema-qualified name to_regclass() resolves like the statement."""
    parts = [n.sval for n in names or () if isinstance(n, ast.String)]  # type: ignore[attr-defined]
    return ".".join(_quote(p) for p in parts)


def _relation_text(relation: ast.RangeVar) -> str:
    parts = [p for p in (relation.schemaname, relation.relname) if p]
    return ".".join(_quote(p) for p in parts)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _resolve(cur: object, name: str) -> int | None:
    cur.execute("SELECT to_regclass(%s)::oid", (name,))  # type: ignore[attr-defined]
    row = cur.fetchone()  # type: ignore[attr-defined]
    return None if row is None or row[0] is None else int(row[0])


def _prepare_index_build(cur: object, node: ast.IndexStmt) -> bool:
    """A valid index of that name means an earlier run finished the build: skip it.

    A killed concurrent build leaves an INVALID index behind: drop it and build again.
    """
    # An index always lives in its table's schema.
    table = _resolve(cur, _relation_text(node.relation))
    if table is None:
        return True  # let the statement fail with the server's own message
    cur.execute(  # type: ignore[attr-defined]
        "SELECT n.nspname, i.indisvalid FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s AND "
        "c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = %s)",
        (node.idxname, table),
    )
    row = cur.fetchone()  # type: ignore[attr-defined]
    if row is None:
        return True
    schema, valid = row
    if valid is None:
        return True  # a relation that is not an index: let the statement fail as it would
    if valid:
        return False
    cur.execute(  # type: ignore[attr-defined]
        pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
            pgsql.Identifier(schema), pgsql.Identifier(node.idxname)))
    return True


def _drop_reindex_leftovers(cur: object, node: ast.ReindexStmt) -> None:
    """Drop the INVALID `<index>_ccnew*` / `<index>_ccold*` copies a killed REINDEX left.

    REINDEX … CONCURRENTLY builds a copy named `<index>_ccnew`, swaps it in, and leaves the
    old one as `<index>_ccold` until it is dropped; killed in between, either stays INVALID
    and a re-run would build yet another copy (and the plan would never land on its `to`).
    """
    name = _relation_text(node.relation) if node.relation is not None else None
    if name is None:
        return
    oid = _resolve(cur, name)
    if oid is None:
        return
    table_of = ("(SELECT indrelid FROM pg_index WHERE indexrelid = %s)"
                if node.kind == enums.ReindexObjectType.REINDEX_OBJECT_INDEX else "%s")
    cur.execute(  # type: ignore[attr-defined]
        "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid "
        f"AND i.indrelid = {table_of} AND c.relname ~ '_cc(new|old)[0-9]*$'",
        (oid,),
    )
    for schema, index in cur.fetchall():  # type: ignore[attr-defined]
        cur.execute(  # type: ignore[attr-defined]
            pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                pgsql.Identifier(schema), pgsql.Identifier(index)))
