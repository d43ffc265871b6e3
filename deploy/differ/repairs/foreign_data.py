"""Foreign-data wrappers, servers and foreign tables: migra ignores all three.

Wrappers, servers, then foreign tables are created before the first view migra creates
(views may read foreign tables), else last; changes are made in place (`OPTIONS (ADD/SET/
DROP …)`, `HANDLER`, `VERSION`, foreign-table columns); a foreign table whose server
changed is re-created. Removed ones are dropped after migra's view drops: foreign tables,
then servers, then wrappers. User mappings hold credentials and are left out (README).
"""

from __future__ import annotations

import json

from pglast import ast, enums
from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident, literal, node, option_map, rows, skip_schemas
from deploy.fingerprint import Exclusions

_WRAPPERS = """
SELECT format('%%I', w.fdwname), NULLIF(w.fdwhandler::regproc::text, '-'),
       NULLIF(w.fdwvalidator::regproc::text, '-'), w.fdwoptions
FROM pg_foreign_data_wrapper w
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_data_wrapper'::regclass
                  AND d.objid = w.oid AND d.deptype = 'e')
"""
_SERVERS = """
SELECT format('%%I', s.srvname), format('%%I', w.fdwname), s.srvtype, s.srvversion, s.srvoptions
FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_server'::regclass
                  AND d.objid = s.oid AND d.deptype = 'e')
"""
_TABLES = """
SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I', s.srvname), ft.ftoptions,
       COALESCE((SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                   a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), a.attfdwoptions)
                 ORDER BY a.attnum)::text
         FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid
           AND ad.adnum = a.attnum
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]')
FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_foreign_server s ON s.oid = ft.ftserver
WHERE n.nspname <> ALL(%(skip)s) AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""


def _read(conn: Connection, query: str, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, query,
                                                   {"skip": skip_schemas(exclusions)})}


def options_clause(old: list[str] | None, new: list[str] | None) -> str:
    """`OPTIONS (…)` turning generic options `old` into `new` ('' when equal)."""
    was, will = option_map(old), option_map(new)
    items = [f"DROP {ident(k)}" for k in was if k not in will]
    items += [f"SET {ident(k)} {literal(v)}" for k, v in will.items() if k in was and was[k] != v]
    items += [f"ADD {ident(k)} {literal(v)}" for k, v in will.items() if k not in was]
    return f" OPTIONS ({', '.join(items)})" if items else ""


def _new_options(options: list[str] | None) -> str:
    """`OPTIONS (k 'v', …)` for a CREATE ('' when there are none)."""
    items = [f"{ident(k)} {literal(v)}" for k, v in option_map(options).items()]
    return f" OPTIONS ({', '.join(items)})" if items else ""


def _column(column: list) -> str:
    name, type_name, not_null, default, options = column
    text = f"{ident(name)} {type_name}" + _new_options(options)
    text += " NOT NULL" if not_null else ""
    return text + (f" DEFAULT {default}" if default is not None else "")


def _create_table(name: str, spec: tuple) -> str:
    server, options, columns = spec
    return (f"CREATE FOREIGN TABLE {name} ("
            + ", ".join(_column(c) for c in json.loads(columns))
            + f") SERVER {server}{_new_options(options)};")


def _alter_table(name: str, old: tuple, new: tuple) -> list[str]:
    statements = []
    table = f"ALTER FOREIGN TABLE {name}"
    if old[1] != new[1]:
        statements.append(f"{table}{options_clause(old[1], new[1])};")
    was = {c[0]: c for c in json.loads(old[2])}
    will = {c[0]: c for c in json.loads(new[2])}
    statements += [f"{table} DROP COLUMN {ident(c)};" for c in was if c not in will]
    for column, spec in will.items():
        if column not in was:
            statements.append(f"{table} ADD COLUMN {_column(spec)};")
            continue
        prefix = f"{table} ALTER COLUMN {ident(column)}"
        before = was[column]
        if before[1] != spec[1]:
            statements.append(f"{prefix} TYPE {spec[1]};")
        if before[2] != spec[2]:
            statements.append(f"{prefix} {'SET' if spec[2] else 'DROP'} NOT NULL;")
        if before[3] != spec[3]:
            statements.append(f"{prefix} SET DEFAULT {spec[3]};" if spec[3] is not None
                              else f"{prefix} DROP DEFAULT;")
        if before[4] != spec[4]:
            statements.append(f"{prefix}{options_clause(before[4], spec[4])};")
    return statements


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Create, alter and drop wrappers, servers and foreign tables."""
    w0, w1 = _read(ctx.source, _WRAPPERS, ctx.exclusions), _read(ctx.target, _WRAPPERS,
                                                                  ctx.exclusions)
    s0, s1 = _read(ctx.source, _SERVERS, ctx.exclusions), _read(ctx.target, _SERVERS,
                                                                 ctx.exclusions)
    t0, t1 = _read(ctx.source, _TABLES, ctx.exclusions), _read(ctx.target, _TABLES,
                                                                ctx.exclusions)
    creates, drops = [], []
    for name, (handler, validator, options) in sorted(w1.items()):
        old = w0.get(name)
        if old is None:
            creates.append(f"CREATE FOREIGN DATA WRAPPER {name}"
                           + (f" HANDLER {handler}" if handler else "")
                           + (f" VALIDATOR {validator}" if validator else "")
                           + _new_options(options) + ";")
            continue
        changes = []
        if old[0] != handler:
            changes.append(f"HANDLER {handler}" if handler else "NO HANDLER")
        if old[1] != validator:
            changes.append(f"VALIDATOR {validator}" if validator else "NO VALIDATOR")
        clause = options_clause(old[2], options)
        if changes or clause:
            actions = "".join(" " + c for c in changes)
            creates.append(f"ALTER FOREIGN DATA WRAPPER {name}{actions}{clause};")
    recreated_servers = {n for n in s1 if n in s0 and s0[n][:2] != s1[n][:2]}
    for name, (wrapper, kind, version, options) in sorted(s1.items()):
        old = s0.get(name)
        if old is None or name in recreated_servers:
            creates.append(f"CREATE SERVER {name}" + (f" TYPE {literal(kind)}" if kind else "")
                           + (f" VERSION {literal(version)}" if version else "")
                           + f" FOREIGN DATA WRAPPER {wrapper}" + _new_options(options)
                           + ";")
            continue
        if old[2] != version:
            creates.append(f"ALTER SERVER {name} VERSION "
                           f"{literal(version) if version else 'NULL'};")
        clause = options_clause(old[3], options)
        if clause:
            creates.append(f"ALTER SERVER {name}{clause};")
    for name, spec in sorted(t1.items()):
        old = t0.get(name)
        if old is None or old[0] != spec[0] or old[0] in recreated_servers:
            if old is not None:
                drops.append(f"DROP FOREIGN TABLE {name};")
            creates.append(_create_table(name, spec))
        else:
            creates += _alter_table(name, old, spec)
    drops += [f"DROP FOREIGN TABLE {n};" for n in sorted(set(t0) - set(t1))]
    drops += [f"DROP SERVER {n};" for n in sorted((set(s0) - set(s1)) | recreated_servers)]
    drops += [f"DROP FOREIGN DATA WRAPPER {n};" for n in sorted(set(w0) - set(w1))]
    if not creates and not drops:
        return statements
    position = next((i for i, s in enumerate(statements)
                     if isinstance(node(s), ast.ViewStmt | ast.CreateTableAsStmt)),
                    len(statements))
    after_views = max((i + 1 for i, s in enumerate(statements) if _drops_view(s)), default=0)
    position = max(position, after_views)
    return statements[:after_views] + drops + statements[after_views:position] + creates + (
        statements[position:])


def _drops_view(statement: str) -> bool:
    tree = node(statement)
    return isinstance(tree, ast.DropStmt) and tree.removeType in (
        enums.ObjectType.OBJECT_VIEW, enums.ObjectType.OBJECT_MATVIEW)
