"""Domains: migra neither creates, alters nor drops them.

New domains are created (with default, NOT NULL, collation and their constraints) right
after migra's leading schema/extension/enum statements, before the tables and composite
types that use them. Changed defaults, NOT NULL and constraints become `ALTER DOMAIN` there
too (before data is written through them). Removed domains are dropped after migra's
statements (once no column uses them). A changed base type is left to the proof: it
refuses, naming the domain (re-typing a domain in use needs hand-written SQL).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import (
    dropped_types,
    ident,
    leading_position,
    rows,
    skip_schemas,
)
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, t.typname), format_type(t.typbasetype, t.typtypmod),
       t.typnotnull, t.typdefault,
       (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
        JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = t.typcollation AND t.typcollation <> (SELECT b.typcollation
          FROM pg_type b WHERE b.oid = t.typbasetype)),
       COALESCE((SELECT json_agg(json_build_array(con.conname, pg_get_constraintdef(con.oid),
                   con.convalidated) ORDER BY con.conname)::text
                 FROM pg_constraint con WHERE con.contypid = t.oid), '[]')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'd' AND n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"""


def _domains(conn: Connection, exclusions: Exclusions) -> dict[str, tuple]:
    return {
        name: (base, not_null, default, collation,
               {c[0]: (c[1], c[2]) for c in json.loads(constraints)})
        for name, base, not_null, default, collation, constraints in rows(
            conn, _QUERY, {"skip": skip_schemas(exclusions)})
    }


def _constraint(name: str, constraint: str, definition: str, validated: bool) -> str:
    suffix = "" if validated or "NOT VALID" in definition else " NOT VALID"
    return f"ALTER DOMAIN {name} ADD CONSTRAINT {ident(constraint)} {definition}{suffix};"


def domain_statements(ctx: DiffContext) -> tuple[list[str], list[str]]:
    """(statements to run before migra's table DDL, drops to run after it)."""
    before = _domains(ctx.source, ctx.exclusions)
    after = _domains(ctx.target, ctx.exclusions)
    early, late = [], []
    for name in sorted(after):
        base, not_null, default, collation, constraints = after[name]
        old = before.get(name)
        if old is None:
            text = f"CREATE DOMAIN {name} AS {base}"
            if collation:
                text += f" COLLATE {collation}"
            if default is not None:
                text += f" DEFAULT {default}"
            early.append(text + (" NOT NULL;" if not_null else ";"))
            old = (base, not_null, default, collation, {})
        elif old[0] != base or old[3] != collation:
            continue  # cannot be altered in place: the proof refuses with the difference
        if old[2] != default:
            early.append(f"ALTER DOMAIN {name} "
                         + (f"SET DEFAULT {default};" if default is not None else "DROP DEFAULT;"))
        if old[1] != not_null:
            early.append(f"ALTER DOMAIN {name} {'SET' if not_null else 'DROP'} NOT NULL;")
        for constraint in sorted(old[4]):
            if constraints.get(constraint) != old[4][constraint]:
                early.append(f"ALTER DOMAIN {name} DROP CONSTRAINT {ident(constraint)};")
        for constraint, (definition, validated) in sorted(constraints.items()):
            if old[4].get(constraint) != (definition, validated):
                early.append(_constraint(name, constraint, definition, validated))
    for name in sorted(set(before) - set(after)):
        late.append(f"DROP DOMAIN {name};")
    return early, late


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Create/alter domains before the tables that use them; drop removed ones last."""
    early, late = domain_statements(ctx)
    if not early and not late:
        return statements
    # migra never drops domains itself, but keep only our drop if it ever starts to.
    statements = [s for s in statements if not set(dropped_types(s)) & {
        d.removeprefix("DROP DOMAIN ").rstrip(";") for d in late}]
    position = leading_position(statements)
    return statements[:position] + early + statements[position:] + late
