"""User-defined casts (CREATE CAST): migra does not know them.

A removed or changed cast is dropped before migra's statements (before its function or
types may be dropped); a new or changed one is created after them (its function and types
exist by then).
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, rows

_QUERY = """
SELECT format('(%%s AS %%s)', format_type(c.castsource, NULL), format_type(c.casttarget, NULL)),
       CASE WHEN c.castfunc <> 0 THEN c.castfunc::regprocedure::text END,
       c.castcontext::text, c.castmethod::text, obj_description(c.oid, 'pg_cast')
FROM pg_cast c
WHERE c.oid >= 16384
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_cast'::regclass
                  AND d.objid = c.oid AND d.deptype IN ('e', 'i'))
"""
_CONTEXT = {"e": "", "a": " AS ASSIGNMENT", "i": " AS IMPLICIT"}


def _casts(conn: Connection) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY)}


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed casts first; create new/changed ones last."""
    before, after = _casts(ctx.source), _casts(ctx.target)
    drops = [f"DROP CAST {k};" for k in sorted(before) if after.get(k, ())[:3] != before[k][:3]]
    creates = []
    for key in sorted(after):
        function, context, method, comment = after[key]
        old = before.get(key)
        if old is None or old[:3] != after[key][:3]:
            how = {"f": f"WITH FUNCTION {function}", "i": "WITH INOUT"}.get(
                method, "WITHOUT FUNCTION")
            creates.append(f"CREATE CAST {key} {how}{_CONTEXT[context]};")
            old = (None, None, None, None)
        if old[3] != comment:
            creates.append(comment_sql(f"CAST {key}", comment))
    return drops + statements + creates
