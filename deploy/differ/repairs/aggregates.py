"""Aggregates (CREATE AGGREGATE): migra neither creates nor drops them.

Plain aggregates (SFUNC/STYPE with optional FINALFUNC, COMBINEFUNC, INITCOND, SORTOP) are
created before the first view migra creates (views may use them; their functions come
earlier), else last; removed or changed ones are dropped after migra's view drops.
Ordered-set, hypothetical and moving-aggregate forms are not generated (the proof refuses,
naming them).
"""

from __future__ import annotations

from pglast import ast, enums
from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import literal, node, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       a.aggkind::text, a.aggtransfn::text, format_type(a.aggtranstype, NULL),
       NULLIF(a.aggfinalfn::text, '-'), NULLIF(a.aggcombinefn::text, '-'), a.agginitval,
       CASE WHEN a.aggsortop <> 0 THEN (SELECT format('OPERATOR(%%I.%%s)', sn.nspname, s.oprname)
         FROM pg_operator s JOIN pg_namespace sn ON sn.oid = s.oprnamespace
         WHERE s.oid = a.aggsortop) END,
       a.aggmtransfn <> 0, obj_description(p.oid, 'pg_proc')
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
"""


def _aggregates(conn: Connection, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY,
                                                   {"skip": skip_schemas(exclusions)})}


def _create(name: str, spec: tuple) -> str | None:
    kind, sfunc, stype, final, combine, initcond, sortop, moving, _comment = spec
    if kind != "n" or moving:
        return None
    options = [f"SFUNC = {sfunc}", f"STYPE = {stype}"]
    options += [f"FINALFUNC = {final}"] if final else []
    options += [f"COMBINEFUNC = {combine}"] if combine else []
    options += [f"INITCOND = {literal(initcond)}"] if initcond is not None else []
    options += [f"SORTOP = {sortop}"] if sortop else []
    return f"CREATE AGGREGATE {name} ({', '.join(options)});"


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop changed/removed aggregates first; create new/changed ones before the views."""
    before = _aggregates(ctx.source, ctx.exclusions)
    after = _aggregates(ctx.target, ctx.exclusions)
    drops, creates = [], []
    for name in sorted(before):
        if after.get(name, (None,))[:-1] != before[name][:-1] and (
            name not in after or _create(name, after[name])
        ):
            drops.append(f"DROP AGGREGATE {name};")
    for name in sorted(after):
        old = before.get(name)
        if old is not None and old[:-1] == after[name][:-1]:
            continue
        created = _create(name, after[name])
        if created:  # its comment comes from comments.py, like any function's
            creates.append(created)
    if not drops and not creates:
        return statements
    position = next((i for i, s in enumerate(statements)
                     if isinstance(node(s), ast.ViewStmt | ast.CreateTableAsStmt)),
                    len(statements))
    statements = statements[:position] + creates + statements[position:]
    # Drops go after migra's view drops (views may use the aggregate).
    after_views = max((i + 1 for i, s in enumerate(statements) if _drops_view(s)), default=0)
    return statements[:after_views] + drops + statements[after_views:]


def _drops_view(statement: str) -> bool:
    tree = node(statement)
    return isinstance(tree, ast.DropStmt) and tree.removeType in (
        enums.ObjectType.OBJECT_VIEW, enums.ObjectType.OBJECT_MATVIEW)
