"""REPLICA IDENTITY: migra ignores it (DEFAULT, FULL, NOTHING, USING INDEX).

Appends `ALTER TABLE … REPLICA IDENTITY …` for every table whose setting differs, after the
index it may name was created by the earlier statements.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import excluded, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.relname), c.relreplident::text,
       (SELECT format('%%I', ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisreplident)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(skip)s)
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""
_FORMS = {"d": "DEFAULT", "f": "FULL", "n": "NOTHING"}


def _identities(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, str | None]]:
    return {
        name: (kind, index)
        for name, kind, index in rows(conn, _QUERY, {"skip": skip_schemas(exclusions)})
    }


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append REPLICA IDENTITY changes for tables whose setting differs."""
    before = _identities(ctx.source, ctx.exclusions)
    after = _identities(ctx.target, ctx.exclusions)
    extra = []
    for name in sorted(after):
        if after[name] == before.get(name, ("d", None)) or excluded(ctx.exclusions, name):
            continue
        kind, index = after[name]
        form = f"USING INDEX {index}" if kind == "i" else _FORMS[kind]
        extra.append(f"ALTER TABLE {name} REPLICA IDENTITY {form};")
    return statements + extra
