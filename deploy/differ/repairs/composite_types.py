"""Composite types (CREATE TYPE … AS (…)): migra creates them after the tables that use
them, and changes them by drop + create, which fails while a column uses the type.

This repair takes composite types over from migra: new types are created before the tables
(right after the domains); attribute changes become `ALTER TYPE … DROP / ALTER / ADD
ATTRIBUTE`; removed types are dropped last. A new attribute order that ADD ATTRIBUTE cannot
produce re-creates the type only when nothing uses it. PostgreSQL refuses ADD / ALTER
ATTRIBUTE while a table column uses the type: then no SQL is generated and the proof
refuses, naming the type's attributes (convert the column by hand).
"""

from __future__ import annotations

import json

from pglast import ast, enums
from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import (
    dropped_types,
    ident,
    leading_position,
    node,
    rows,
    skip_schemas,
)
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, t.typname),
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                 (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
                  JOIN pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = a.attcollation AND a.attcollation <> (SELECT b.typcollation
                    FROM pg_type b WHERE b.oid = a.atttypid))) ORDER BY a.attnum)::text
        FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
          AND NOT a.attisdropped),
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_type'::regclass
               AND d.refobjid = t.oid AND d.deptype = 'n')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c' AND n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"""


def _types(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[list[tuple], bool]]:
    return {
        name: ([tuple(a) for a in json.loads(attributes or "[]")], used)
        for name, attributes, used in rows(conn, _QUERY, {"skip": skip_schemas(exclusions)})
    }


def _attribute(attribute: tuple) -> str:
    name, type_name, collation = attribute
    return f"{ident(name)} {type_name}" + (f" COLLATE {collation}" if collation else "")


def _create(name: str, attributes: list[tuple]) -> str:
    return f"CREATE TYPE {name} AS ({', '.join(_attribute(a) for a in attributes)});"


def _changes(name: str, old: list[tuple], new: list[tuple], used: bool) -> list[str] | None:
    """ALTER TYPE statements from `old` to `new` attributes, or None if order cannot match."""
    old_by_name, new_by_name = {a[0]: a for a in old}, {a[0]: a for a in new}
    kept = [a[0] for a in old if a[0] in new_by_name]
    added = [a[0] for a in new if a[0] not in old_by_name]
    if kept + added != [a[0] for a in new]:
        return None if used else [f"DROP TYPE {name};", _create(name, new)]
    actions = [f"DROP ATTRIBUTE {ident(a[0])}" for a in old if a[0] not in new_by_name]
    for attribute in kept:
        if old_by_name[attribute] != new_by_name[attribute]:
            _, type_name, collation = new_by_name[attribute]
            actions.append(f"ALTER ATTRIBUTE {ident(attribute)} TYPE {type_name}"
                           + (f" COLLATE {collation}" if collation else ""))
    actions += [f"ADD ATTRIBUTE {_attribute(new_by_name[a])}" for a in added]
    if used and any(not a.startswith("DROP ") for a in actions):
        # PostgreSQL refuses ADD / ALTER ATTRIBUTE while a column uses the type.
        return None
    return [f"ALTER TYPE {name} {', '.join(actions)};"] if actions else []


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Create/alter composite types before the tables; drop removed ones last."""
    before = _types(ctx.source, ctx.exclusions)
    after = _types(ctx.target, ctx.exclusions)
    names = set(before) | set(after)
    # migra's own composite-type statements are replaced by the ones below.
    statements = [s for s in statements if not _is_migra_composite(s, names)]
    early, late = [], []
    for name in sorted(after):
        attributes, _used = after[name]
        if name not in before:
            early.append(_create(name, attributes))
            continue
        changes = _changes(name, before[name][0], attributes, before[name][1])
        early += changes or []
    late += [f"DROP TYPE {name};" for name in sorted(set(before) - set(after))]
    if not early and not late:
        return statements
    position = leading_position(statements)
    statements = statements[:position] + early + statements[position:]
    # Dropped before the domains, range types and enums they may use (dropped by the repairs
    # before this one, or by migra after its table drops).
    drop_at = next((i for i, s in enumerate(statements) if _drops_other_type(s, names)),
                   len(statements))
    return statements[:drop_at] + late + statements[drop_at:]


def _drops_other_type(statement: str, composites: set[str]) -> bool:
    tree = node(statement)
    if not isinstance(tree, ast.DropStmt):
        return False
    if tree.removeType == enums.ObjectType.OBJECT_DOMAIN:
        return True
    return bool(set(dropped_types(statement)) - composites)


def _is_migra_composite(statement: str, names: set[str]) -> bool:
    tree = node(statement)
    if isinstance(tree, ast.CompositeTypeStmt):
        rv = tree.typevar
        return f"{ident(rv.schemaname or 'public')}.{ident(rv.relname)}" in names
    return bool(set(dropped_types(statement)) & names)
