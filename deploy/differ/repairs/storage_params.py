"""Storage parameters (reloptions): migra never emits `WITH (…)` / `SET (…)`.

Covers tables' and materialized views' storage parameters (fillfactor, autovacuum_*, …),
their TOAST table's (`toast.*`), and view options (`security_invoker`, `security_barrier`,
`check_option`), which PostgreSQL stores the same way. A relation the statements create or
replace (migra re-creates views with `CREATE OR REPLACE VIEW`, which resets the options)
starts from no options. Appends `ALTER TABLE|VIEW|MATERIALIZED VIEW … RESET (…) / SET (…)`.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import (
    created_relations,
    excluded,
    option_changes,
    option_map,
    rows,
    skip_schemas,
)
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text, c.reloptions,
       (SELECT t.reloptions FROM pg_class t WHERE t.oid = c.reltoastrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm') AND n.nspname <> ALL(%(skip)s)
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""

_VERB = {"r": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def _options(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, dict[str, str]]]:
    result = {}
    for name, kind, options, toast in rows(conn, _QUERY, {"skip": skip_schemas(exclusions)}):
        merged = option_map(options)
        merged.update({"toast." + k: v for k, v in option_map(toast).items()})
        result[name] = (kind, merged)
    return result


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append the RESET/SET of storage parameters and view options that differ."""
    before = _options(ctx.source, ctx.exclusions)
    after = _options(ctx.target, ctx.exclusions)
    recreated = created_relations(statements)
    extra = []
    for name in sorted(after):
        if excluded(ctx.exclusions, name):
            continue
        kind, new = after[name]
        old = {} if name in recreated or name not in before else before[name][1]
        if before.get(name, (kind,))[0] != kind:
            old = {}
        plain = {k: v for k, v in new.items() if not k.startswith("toast.")}
        toast = {k: v for k, v in new.items() if k.startswith("toast.")}
        for part in (plain, toast):
            was = {k: v for k, v in old.items() if k.startswith("toast.") == (part is toast)}
            for clause in option_changes(was, part):
                extra.append(f"ALTER {_VERB[kind]} {name} {clause};")
    return statements + extra
