"""Extended statistics (CREATE STATISTICS): migra does not know them.

A statistics object that is new or whose definition changed is created after migra's
statements (its table and columns exist by then); one that is gone or changed is dropped
before them (while its table still exists). A changed statistics target alone becomes
`ALTER STATISTICS … SET STATISTICS`. Comments on new objects come along.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, s.stxname), pg_get_statisticsobjdef(s.oid),
       COALESCE((to_jsonb(s) ->> 'stxstattarget')::int, -1),
       obj_description(s.oid, 'pg_statistic_ext')
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE n.nspname <> ALL(%(skip)s)
"""


def _objects(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, int, str | None]]:
    return {
        name: (definition, target, comment)
        for name, definition, target, comment in rows(
            conn, _QUERY, {"skip": skip_schemas(exclusions)})
    }


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed statistics first; create new/changed ones last."""
    before = _objects(ctx.source, ctx.exclusions)
    after = _objects(ctx.target, ctx.exclusions)
    drops, creates = [], []
    for name in sorted(before):
        if name not in after or after[name][0] != before[name][0]:
            drops.append(f"DROP STATISTICS {name};")
    for name in sorted(after):
        definition, target, comment = after[name]
        old = before.get(name)
        if old is not None and old[0] == definition:
            if old[1] != target:
                creates.append(f"ALTER STATISTICS {name} SET STATISTICS {target};")
            if old[2] != comment:
                creates.append(comment_sql(f"STATISTICS {name}", comment))
            continue
        creates.append(definition + ";")
        if target != -1:
            creates.append(f"ALTER STATISTICS {name} SET STATISTICS {target};")
        if comment is not None:
            creates.append(comment_sql(f"STATISTICS {name}", comment))
    return drops + statements + creates
