"""Encoding conversions (CREATE CONVERSION): migra does not know them.

A removed or changed conversion is dropped before migra's statements; a new or changed one
is created after them (its function exists by then).
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, literal, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.conname), pg_encoding_to_char(c.conforencoding),
       pg_encoding_to_char(c.contoencoding), c.conproc::regproc::text, c.condefault,
       obj_description(c.oid, 'pg_conversion')
FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE n.nspname <> ALL(%(skip)s) AND c.oid >= 16384
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_conversion'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""


def _conversions(conn: Connection, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY,
                                                   {"skip": skip_schemas(exclusions)})}


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed conversions first; create new/changed ones last."""
    before = _conversions(ctx.source, ctx.exclusions)
    after = _conversions(ctx.target, ctx.exclusions)
    drops = [f"DROP CONVERSION {k};" for k in sorted(before)
             if after.get(k, ())[:4] != before[k][:4]]
    creates = []
    for name in sorted(after):
        source, target, function, default, comment = after[name]
        old = before.get(name)
        if old is None or old[:4] != after[name][:4]:
            creates.append(f"CREATE {'DEFAULT ' if default else ''}CONVERSION {name} FOR "
                           f"{literal(source)} TO {literal(target)} FROM {function};")
            old = (None, None, None, None, None)
        if old[4] != comment:
            creates.append(comment_sql(f"CONVERSION {name}", comment))
    return drops + statements + creates
