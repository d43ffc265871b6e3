"""Event triggers: migra does not know them.

A new or changed event trigger is created after migra's statements (its function exists
by then); a removed or changed one is dropped before them (before its function may be
dropped). A change of only the enabled state becomes `ALTER EVENT TRIGGER … ENABLE/DISABLE`.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, ident, literal, rows

_QUERY = """
SELECT e.evtname, e.evtevent, e.evtfoid::regproc::text, e.evttags, e.evtenabled::text,
       obj_description(e.oid, 'pg_event_trigger')
FROM pg_event_trigger e
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass
                  AND d.objid = e.oid AND d.deptype = 'e')
"""
_ENABLED = {"O": "ENABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS", "D": "DISABLE"}


def _triggers(conn: Connection) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY)}


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed event triggers first; create new/changed ones last."""
    before, after = _triggers(ctx.source), _triggers(ctx.target)
    drops, creates = [], []
    for name in sorted(before):
        if name not in after or after[name][:3] != before[name][:3]:
            drops.append(f"DROP EVENT TRIGGER {ident(name)};")
    for name in sorted(after):
        event, function, tags, enabled, comment = after[name]
        old = before.get(name)
        if old is None or old[:3] != (event, function, tags):
            when = f" WHEN TAG IN ({', '.join(literal(t) for t in tags)})" if tags else ""
            creates.append(
                f"CREATE EVENT TRIGGER {ident(name)} ON {event}{when} "
                f"EXECUTE FUNCTION {function}();"
            )
            old = (event, function, tags, "O", None)
        if old[3] != enabled:
            creates.append(f"ALTER EVENT TRIGGER {ident(name)} {_ENABLED[enabled]};")
        if old[4] != comment:
            creates.append(comment_sql(f"EVENT TRIGGER {ident(name)}", comment))
    return drops + statements + creates
