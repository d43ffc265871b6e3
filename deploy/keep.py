"""Nothing lost: data a plan drops is kept in the tool's schema so its reverse can restore it.

When `apply` runs a plan that drops a column or a table, it first copies what is dropped
into `<history schema>.kept_data` in the same transaction, just before the DROP: one row per
kept row, as jsonb, keyed by the table's primary key (a column of a table without one is not
kept, and `apply` says so). `invoke rollback` runs the reverse (which re-creates the column or
table) and then restores the values from there, in the reverse's transaction, before the
schema is verified; restored rows are removed. `[tool.deploy] keep_dropped_data = false`
turns keeping off; `keep_max_mb` (default 100) skips data larger than that; `invoke rollback
--forget` removes kept data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg2
from psycopg2 import sql as pgsql

from deploy.config import Config
from deploy.lazy import lazy_module
from deploy.plans import Plan
from deploy.runner import Step
from deploy.statements import Statement, parse

if TYPE_CHECKING:
    from pglast import ast, enums
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())

Connection = psycopg2.extensions.connection
Progress = Callable[[str], None]

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id bigserial PRIMARY KEY,
    plan text NOT NULL,
    relation text NOT NULL,
    column_name text,
    key_columns text[] NOT NULL,
    kept_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    row_data jsonb NOT NULL
)
"""


def _table(schema: str) -> pgsql.Identifier:
    return pgsql.Identifier(schema, "kept_data")


def dropped(body: str) -> list[tuple[str, str, str | None]]:
    """(schema, table, column or None for the whole table) for each drop in `body`."""
    found: list[tuple[str, str, str | None]] = []
    for parsed in parse(body):
        node = parsed.node
        if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            table = (node.relation.schemaname or "public", node.relation.relname)
            for cmd in node.cmds or ():
                if cmd.subtype == enums.AlterTableType.AT_DropColumn and cmd.name:
                    found.append((*table, cmd.name))
        elif isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_TABLE:
            for names in node.objects or ():
                parts = [n.sval for n in names]
                found.append(("public" if len(parts) == 1 else parts[-2], parts[-1], None))
    return found


def _key_columns(conn: Connection, relation: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)", (relation,))
        return [row[0] for row in cur.fetchall()]


def _size_mb(conn: Connection, relation: pgsql.Composable, column: str | None) -> float:
    with conn.cursor() as cur:
        if column is None:
            cur.execute("SELECT pg_total_relation_size(%s::regclass)",
                        (relation.as_string(conn),))
        else:
            cur.execute(pgsql.SQL("SELECT coalesce(sum(pg_column_size({})), 0) FROM {}")
                        .format(pgsql.Identifier(column), relation))
        return float(cur.fetchone()[0]) / 1e6


def add_keeps(conn: Connection, config: Config, plan: Plan, steps: list[Step],
              progress: Progress) -> list[Step]:
    """`steps` with statements that copy each dropped column/table into kept_data inserted
    just before the drop (same transaction); unchanged when keeping is off or not possible."""
    if not config.keep_dropped_data:
        return steps
    drops = dropped(plan.body)
    if not drops:
        return steps
    schema = config.history_schema
    out: list[Step] = []
    ensured = False
    for step in steps:
        if not step.transactional:
            out.append(step)
            continue
        statements: list[Statement] = []
        for statement in step.statements:
            for schema_name, table, column in dropped(statement.sql):
                relation = pgsql.Identifier(schema_name, table)
                name = relation.as_string(conn)
                with conn.cursor() as cur:
                    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
                    if not cur.fetchone()[0]:
                        continue
                keys = _key_columns(conn, name)
                what = f"{name}.{column}" if column else name
                if column is not None and not keys:
                    progress(f"note: {what} is dropped without being kept: its table has no "
                             "primary key to restore it by")
                    continue
                size = _size_mb(conn, relation, column)
                if size > config.keep_max_mb:
                    progress(f"note: {what} ({size:.1f} MB) is dropped without being kept: "
                             f"larger than keep_max_mb = {config.keep_max_mb:g}")
                    continue
                if not ensured:
                    with conn.cursor() as cur:
                        cur.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            pgsql.Identifier(schema)))
                        cur.execute(pgsql.SQL(_DDL).format(table=_table(schema)))
                    ensured = True
                progress(f"keeping {what} ({size:.2f} MB) so that a rollback restores it")
                statements.append(Statement(
                    _keep_sql(schema, plan.filename, relation, column, keys).as_string(conn),
                    statement.line, True))
            statements.append(statement)
        out.append(Step(tuple(statements), True))
    return out


def _keep_sql(schema: str, plan: str, relation: pgsql.Identifier, column: str | None,
              keys: list[str]) -> pgsql.Composed:
    if column is None:
        data = pgsql.SQL("to_jsonb(t)")
    else:
        pairs = [pgsql.SQL("{}, t.{}").format(pgsql.Literal(c), pgsql.Identifier(c))
                 for c in [*keys, column]]
        data = pgsql.SQL("jsonb_build_object({})").format(pgsql.SQL(", ").join(pairs))
    return pgsql.SQL(
        "DELETE FROM {kept} WHERE plan = {plan} AND relation = {rel} AND column_name "
        "IS NOT DISTINCT FROM {col}; INSERT INTO {kept} (plan, relation, column_name, "
        "key_columns, row_data) SELECT {plan}, {rel}, {col}, {keys}, {data} FROM {relation} t"
    ).format(kept=_table(schema), plan=pgsql.Literal(plan),
             rel=pgsql.Literal(relation.strings[0] + "." + relation.strings[1]),
             col=pgsql.Literal(column), keys=pgsql.Literal(keys), data=data, relation=relation)


def add_restores(conn: Connection, config: Config, forward: str, steps: list[Step],
                 progress: Progress) -> list[Step]:
    """`steps` (a reverse of plan `forward`) with statements appended to its last
    transactional step that put the kept data back and then forget it."""
    schema = config.history_schema
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_table(schema).as_string(conn),))
        if not cur.fetchone()[0]:
            return steps
        cur.execute(pgsql.SQL("SELECT DISTINCT relation, column_name, key_columns FROM {} "
                              "WHERE plan = %s").format(_table(schema)), (forward,))
        kept = cur.fetchall()
    last = max((i for i, s in enumerate(steps) if s.transactional), default=None)
    if not kept or last is None:
        return steps
    # A NOT NULL column comes back nullable, is refilled, then gets NOT NULL again: adding it
    # NOT NULL to a table holding rows would fail before the values could be restored.
    columns = {(relation, column) for relation, column, _ in kept if column}
    relaxed: list[tuple[str, str]] = []
    steps = [Step(tuple(_relax(st, columns, relaxed) for st in step.statements), True)
             if step.transactional else step for step in steps]
    line = steps[last].statements[-1].line
    extra = []
    for relation_name, column, keys in sorted(kept, key=lambda r: (r[0], r[1] or "")):
        schema_name, _, table = relation_name.partition(".")
        relation = pgsql.Identifier(schema_name, table)
        where = pgsql.SQL("k.plan = {} AND k.relation = {} AND k.column_name IS NOT DISTINCT "
                          "FROM {}").format(pgsql.Literal(forward), pgsql.Literal(relation_name),
                                            pgsql.Literal(column))
        match = pgsql.SQL("")
        if column is None:
            query = pgsql.SQL(
                "INSERT INTO {rel} OVERRIDING SYSTEM VALUE SELECT (jsonb_populate_record("
                "NULL::{rel}, k.row_data)).* FROM {kept} k WHERE {where}")
        else:
            match = pgsql.SQL(" AND ").join(
                pgsql.SQL("t.{c} = r.{c}").format(c=pgsql.Identifier(c)) for c in keys)
            query = pgsql.SQL(
                "UPDATE {rel} t SET {col} = r.{col} FROM (SELECT (jsonb_populate_record("
                "NULL::{rel}, k.row_data)).* FROM {kept} k WHERE {where}) r WHERE {match}")
        extra.append(query.format(rel=relation, kept=_table(schema), where=where,
                                  col=pgsql.Identifier(column or "-"),
                                  match=match).as_string(conn))
        progress(f"restoring kept data of {relation_name}" + (f".{column}" if column else ""))
    for relation_name, column in relaxed:
        schema_name, _, table = relation_name.partition(".")
        extra.append(pgsql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
            pgsql.Identifier(schema_name, table), pgsql.Identifier(column)).as_string(conn))
    extra.append(pgsql.SQL("DELETE FROM {} WHERE plan = {}").format(
        _table(schema), pgsql.Literal(forward)).as_string(conn))
    statements = (*steps[last].statements, *(Statement(sql, line, True) for sql in extra))
    return [*steps[:last], Step(statements, True), *steps[last + 1:]]


def _relax(statement: Statement, columns: set[tuple[str, str]],
           relaxed: list[tuple[str, str]]) -> Statement:
    """`statement` without NOT NULL on the kept columns it adds (noted in `relaxed`)."""
    node = parse(statement.sql)[0].node
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return statement
    relation = f"{node.relation.schemaname or 'public'}.{node.relation.relname}"
    changed = False
    for cmd in node.cmds or ():
        definition = cmd.def_
        if (cmd.subtype != enums.AlterTableType.AT_AddColumn or definition is None
                or (relation, definition.colname) not in columns):
            continue
        constraints = tuple(definition.constraints or ())
        kept = tuple(c for c in constraints if c.contype != enums.ConstrType.CONSTR_NOTNULL)
        if len(kept) != len(constraints) or definition.is_not_null:
            definition.constraints = kept or None
            definition.is_not_null = False
            relaxed.append((relation, definition.colname))
            changed = True
    if not changed:
        return statement
    from pglast.stream import RawStream  # only when a statement is rewritten (deploy/lazy.py)

    return Statement(RawStream()(node), statement.line, True)


def summary(conn: Connection, schema: str) -> list[str]:
    """One line per kept column/table: plan, what, rows and size ([] when nothing is kept)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_table(schema).as_string(conn),))
        if not cur.fetchone()[0]:
            return []
        cur.execute(pgsql.SQL(
            "SELECT plan, relation, column_name, count(*), sum(pg_column_size(row_data)), "
            "min(kept_at) FROM {} GROUP BY 1, 2, 3 ORDER BY 6").format(_table(schema)))
        rows = cur.fetchall()
    return [f"{relation}{'.' + column if column else ' (whole table)'}: {count} row(s), "
            f"{size / 1e6:.2f} MB, dropped by {plan} at {at:%Y-%m-%d %H:%M}Z"
            for plan, relation, column, count, size, at in rows]


def forget(conn: Connection, schema: str, plan: str | None = None) -> int:
    """Delete kept data (of `plan`, or all); return how many rows went."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_table(schema).as_string(conn),))
        if not cur.fetchone()[0]:
            return 0
        query = pgsql.SQL("DELETE FROM {}").format(_table(schema))
        if plan is not None:
            cur.execute(query + pgsql.SQL(" WHERE plan = %s"), (plan,))
        else:
            cur.execute(query)
        return cur.rowcount
