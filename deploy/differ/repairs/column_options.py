"""Per-column settings migra ignores: SET STATISTICS, attribute options (n_distinct,
n_distinct_inherited) and SET COMPRESSION.

Appends `ALTER TABLE … ALTER COLUMN …` for every table or materialized-view column whose
setting differs; a column (or relation) the statements create starts from the defaults.
Index columns (`ALTER INDEX … ALTER COLUMN <number> SET STATISTICS`) are covered too.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import (
    created_relations,
    excluded,
    ident,
    option_changes,
    option_map,
    rows,
    skip_schemas,
)
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text,
       CASE WHEN c.relkind IN ('i', 'I') THEN a.attnum::text ELSE a.attname END,
       COALESCE((to_jsonb(a) ->> 'attstattarget')::int, -1),
       -- only the options ALTER COLUMN … SET (…) accepts, as the fingerprint reads them
       (SELECT array_agg(o ORDER BY o) FROM unnest(a.attoptions) o
        WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')),
       COALESCE(to_jsonb(a) ->> 'attcompression', '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm', 'f', 'i', 'I')
  AND n.nspname <> ALL(%(skip)s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""
_DEFAULT = (-1, {}, "")
_VERBS = {"m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "i": "INDEX", "I": "INDEX"}
_COMPRESSION = {"p": "pglz", "l": "lz4", "": "default"}


def _columns(conn: Connection, exclusions: Exclusions) -> dict[tuple[str, str], tuple[str, tuple]]:
    return {
        # Almost every column has no options: skip the call (40k columns at 2000 tables).
        (table, column): (kind, (stat, option_map(options) if options else {}, compression))
        for table, kind, column, stat, options, compression in rows(
            conn, _QUERY, {"skip": skip_schemas(exclusions)})
    }


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append SET STATISTICS / SET (…) / RESET (…) / SET COMPRESSION where they differ."""
    before = _columns(ctx.source, ctx.exclusions)
    after = _columns(ctx.target, ctx.exclusions)
    recreated = created_relations(statements)
    extra = []
    for (table, column), (kind, new) in sorted(after.items()):
        if excluded(ctx.exclusions, table):
            continue
        old = _DEFAULT if table in recreated else before.get((table, column), (kind, _DEFAULT))[1]
        verb = _VERBS.get(kind, "TABLE")
        # Index columns are addressed by number (only SET STATISTICS applies to them).
        target = column if kind in ("i", "I") else ident(column)
        prefix = f"ALTER {verb} {table} ALTER COLUMN {target}"
        if old[0] != new[0]:
            extra.append(f"{prefix} SET STATISTICS {new[0]};")
        for clause in option_changes(old[1], new[1]):
            extra.append(f"{prefix} {clause};")
        if old[2] != new[2]:
            extra.append(f"{prefix} SET COMPRESSION {_COMPRESSION[new[2]]};")
    return statements + extra
