"""Rules (CREATE RULE): migra does not know them.

A rule that is gone or changed is dropped before migra's statements (its relation still
exists then); a new or changed one, or one on a relation the statements re-create, is
created after them with `CREATE OR REPLACE RULE` from `pg_get_ruledef`.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import (
    comment_sql,
    created_relations,
    excluded,
    ident,
    rows,
    skip_schemas,
)
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.relname), r.rulename, pg_get_ruledef(r.oid),
       obj_description(r.oid, 'pg_rewrite')
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN' AND n.nspname <> ALL(%(skip)s)
"""


def _rules(
    conn: Connection, exclusions: Exclusions
) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {
        (table, name): (definition, comment)
        for table, name, definition, comment in rows(
            conn, _QUERY, {"skip": skip_schemas(exclusions)})
        if not excluded(exclusions, table)
    }


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed rules first; create new, changed and lost ones last."""
    before = _rules(ctx.source, ctx.exclusions)
    after = _rules(ctx.target, ctx.exclusions)
    recreated = created_relations(statements)
    drops, creates = [], []
    for table, name in sorted(before):
        if after.get((table, name), (None,))[0] != before[(table, name)][0]:
            drops.append(f"DROP RULE {ident(name)} ON {table};")
    for (table, name), (definition, comment) in sorted(after.items()):
        old = before.get((table, name))
        target = f"RULE {ident(name)} ON {table}"
        if old is not None and old[0] == definition and table not in recreated:
            if old[1] != comment:
                creates.append(comment_sql(target, comment))
            continue
        text = definition.rstrip().rstrip(";")
        creates.append(text.replace("CREATE RULE", "CREATE OR REPLACE RULE", 1) + ";")
        if comment is not None:
            creates.append(comment_sql(target, comment))
    return drops + statements + creates
