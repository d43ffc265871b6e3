"""Operators (CREATE OPERATOR): migra does not know them.

A removed or changed operator is dropped before migra's statements (before migra may drop
its function); a new or changed one is created after them (its function exists by then).
Operator classes and families are not generated (the proof refuses, naming them).
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%s', n.nspname, o.oprname),
       CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END,
       CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END,
       o.oprcode::regproc::text,
       CASE WHEN o.oprcom <> 0 THEN (SELECT format('OPERATOR(%%I.%%s)', cn.nspname, c.oprname)
         FROM pg_operator c JOIN pg_namespace cn ON cn.oid = c.oprnamespace
         WHERE c.oid = o.oprcom) END,
       CASE WHEN o.oprnegate <> 0 THEN (SELECT format('OPERATOR(%%I.%%s)', cn.nspname, c.oprname)
         FROM pg_operator c JOIN pg_namespace cn ON cn.oid = c.oprnamespace
         WHERE c.oid = o.oprnegate) END,
       NULLIF(o.oprrest::regproc::text, '-'), NULLIF(o.oprjoin::regproc::text, '-'),
       o.oprcanhash, o.oprcanmerge, obj_description(o.oid, 'pg_operator')
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
WHERE n.nspname <> ALL(%(skip)s) AND o.oprcode <> 0
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass
                  AND d.objid = o.oid AND d.deptype = 'e')
"""


def _operators(conn: Connection, exclusions: Exclusions) -> dict[tuple[str, str, str], tuple]:
    return {(row[0], row[1], row[2]): tuple(row[3:]) for row in rows(
        conn, _QUERY, {"skip": skip_schemas(exclusions)})}


def _signature(key: tuple[str, str, str]) -> str:
    name, left, right = key
    return f"{name} ({left}, {right})"


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed operators first; create new/changed ones last."""
    before = _operators(ctx.source, ctx.exclusions)
    after = _operators(ctx.target, ctx.exclusions)
    drops = [f"DROP OPERATOR {_signature(k)};" for k in sorted(before)
             if after.get(k, (None,))[:-1] != before[k][:-1]]
    creates = []
    for key in sorted(after):
        function, commutator, negator, restrict, join, hashes, merges, comment = after[key]
        old = before.get(key)
        if old is not None and old[:-1] == after[key][:-1]:
            if old[-1] != comment:
                creates.append(comment_sql(f"OPERATOR {_signature(key)}", comment))
            continue
        name, left, right = key
        options = [f"FUNCTION = {function}"]
        options += [f"LEFTARG = {left}"] if left != "NONE" else []
        options += [f"RIGHTARG = {right}"] if right != "NONE" else []
        options += [f"COMMUTATOR = {commutator}"] if commutator else []
        options += [f"NEGATOR = {negator}"] if negator else []
        options += [f"RESTRICT = {restrict}"] if restrict else []
        options += [f"JOIN = {join}"] if join else []
        options += ["HASHES"] if hashes else []
        options += ["MERGES"] if merges else []
        creates.append(f"CREATE OPERATOR {name} ({', '.join(options)});")
        if comment is not None:
            creates.append(comment_sql(f"OPERATOR {_signature(key)}", comment))
    return drops + statements + creates
