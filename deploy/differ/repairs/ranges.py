"""Range types (CREATE TYPE … AS RANGE): migra neither creates nor drops them.

New range types are created with the domains and composite types, before the tables
(subtype, operator class when not the default, collation, canonical and subtype_diff
functions, multirange name). A range type cannot be altered: a changed one is dropped and
re-created there when nothing uses it, otherwise the proof refuses, naming it. Removed ones
are dropped after migra's statements.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import leading_position, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, t.typname), format_type(r.rngsubtype, NULL),
       (SELECT format('%%I.%%I', ocn.nspname, oc.opcname) FROM pg_opclass oc
        JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
        WHERE oc.oid = r.rngsubopc AND NOT oc.opcdefault),
       (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
        JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = r.rngcollation AND r.rngcollation <> (SELECT st.typcollation
          FROM pg_type st WHERE st.oid = r.rngsubtype)),
       NULLIF(r.rngcanonical::regproc::text, '-'), NULLIF(r.rngsubdiff::regproc::text, '-'),
       (SELECT format('%%I.%%I', mn.nspname, m.typname) FROM pg_type m
        JOIN pg_namespace mn ON mn.oid = m.typnamespace
        WHERE m.oid = (to_jsonb(r) ->> 'rngmultitypid')::oid),
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_type'::regclass
               AND d.refobjid = t.oid AND d.deptype = 'n'
               -- its own constructor functions are not uses
               AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = d.classid
                               AND i.objid = d.objid AND i.deptype = 'i'
                               AND i.refobjid IN (t.oid, (to_jsonb(r) ->> 'rngmultitypid')::oid)))
FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"""


def _ranges(conn: Connection, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY,
                                                   {"skip": skip_schemas(exclusions)})}


def _create(name: str, spec: tuple) -> str:
    subtype, opclass, collation, canonical, subdiff, multirange, _used = spec
    options = [f"SUBTYPE = {subtype}"]
    options += [f"SUBTYPE_OPCLASS = {opclass}"] if opclass else []
    options += [f"COLLATION = {collation}"] if collation else []
    options += [f"CANONICAL = {canonical}"] if canonical else []
    options += [f"SUBTYPE_DIFF = {subdiff}"] if subdiff else []
    options += [f"MULTIRANGE_TYPE_NAME = {multirange}"] if multirange else []
    return f"CREATE TYPE {name} AS RANGE ({', '.join(options)});"


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Create new range types before the tables; re-create unused changed ones; drop last."""
    before = _ranges(ctx.source, ctx.exclusions)
    after = _ranges(ctx.target, ctx.exclusions)
    early = []
    for name in sorted(after):
        old = before.get(name)
        if old is not None and old[:-1] == after[name][:-1]:
            continue
        if old is not None:
            if old[-1]:
                continue  # used: cannot be re-created here; the proof names it
            early.append(f"DROP TYPE {name};")
        early.append(_create(name, after[name]))
    late = [f"DROP TYPE {name};" for name in sorted(set(before) - set(after))]
    if not early and not late:
        return statements
    position = leading_position(statements)
    return statements[:position] + early + statements[position:] + late
