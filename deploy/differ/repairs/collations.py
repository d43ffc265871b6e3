"""Collations: migra writes `locale = '<lc_collate>'`, which loses ICU locales (it prints
`locale = 'None'`), different LC_COLLATE / LC_CTYPE and `deterministic = false`.

This repair takes collations over: new ones are created first (after schemas and
extensions) with every property from the catalog; a changed one is dropped and re-created
there when nothing uses it (a collation cannot be altered), otherwise the proof refuses,
naming it; removed ones are dropped last.
"""

from __future__ import annotations

from pglast import ast, enums
from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import literal, node, rows, skip_schemas
from deploy.fingerprint import Exclusions

_QUERY = """
SELECT format('%%I.%%I', n.nspname, co.collname), co.collprovider::text,
       CASE WHEN co.collprovider <> 'i' THEN co.collcollate END,
       CASE WHEN co.collprovider <> 'i' THEN co.collctype END,
       COALESCE(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale',
                CASE WHEN co.collprovider = 'i' THEN co.collcollate END),
       to_jsonb(co) ->> 'collicurules', co.collisdeterministic,
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_collation'::regclass
               AND d.refobjid = co.oid AND d.deptype = 'n')
FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
WHERE n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass
                  AND d.objid = co.oid AND d.deptype = 'e')
"""
_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin", "d": "default"}


def _collations(conn: Connection, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, _QUERY,
                                                   {"skip": skip_schemas(exclusions)})}


def _create(name: str, spec: tuple) -> str:
    provider, collate, ctype, locale, rules, deterministic, _used = spec
    options = [f"provider = {_PROVIDERS.get(provider, provider)}"]
    if locale is not None:
        options.append(f"locale = {literal(locale)}")
    if provider == "c" or (locale is None and collate is not None):
        options += [f"lc_collate = {literal(collate)}", f"lc_ctype = {literal(ctype)}"]
    if rules is not None:
        options.append(f"rules = {literal(rules)}")
    if not deterministic:
        options.append("deterministic = false")
    return f"CREATE COLLATION {name} ({', '.join(options)});"


def _is_migra_collation(statement: str) -> bool:
    tree = node(statement)
    if isinstance(tree, ast.DefineStmt):
        return tree.kind == enums.ObjectType.OBJECT_COLLATION
    return isinstance(tree, ast.DropStmt) and tree.removeType == enums.ObjectType.OBJECT_COLLATION


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Replace migra's collation statements by complete ones."""
    before = _collations(ctx.source, ctx.exclusions)
    after = _collations(ctx.target, ctx.exclusions)
    statements = [s for s in statements if not _is_migra_collation(s)]
    early, late = [], []
    for name in sorted(after):
        old = before.get(name)
        if old is not None and old[:6] == after[name][:6]:
            continue
        if old is not None:
            if old[6]:
                continue  # in use: cannot be re-created here; the proof names it
            early.append(f"DROP COLLATION {name};")
        early.append(_create(name, after[name]))
    late += [f"DROP COLLATION {name};" for name in sorted(set(before) - set(after))]
    position = next((i for i, s in enumerate(statements) if not isinstance(
        node(s), ast.CreateSchemaStmt | ast.CreateExtensionStmt)), len(statements))
    return statements[:position] + early + statements[position:] + late
