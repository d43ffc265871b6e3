"""Text search dictionaries and configurations: migra does not know them.

New dictionaries, then configurations (parser plus every token mapping), are created
early, after migra's leading schema/extension/collation statements: indexes and generated
columns may name a configuration. Changed mappings and dictionary options are altered in
place; a configuration whose parser changed is re-created. Removed ones are dropped last.
A dictionary whose template changed, parsers and templates (they need C functions) are not
generated: the proof refuses, naming them.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import leading_position, node, rows, skip_schemas
from deploy.fingerprint import Exclusions

_DICTIONARIES = """
SELECT format('%%I.%%I', n.nspname, d.dictname),
       (SELECT format('%%I.%%I', tn.nspname, t.tmplname) FROM pg_ts_template t
        JOIN pg_namespace tn ON tn.oid = t.tmplnamespace WHERE t.oid = d.dicttemplate),
       d.dictinitoption
FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
WHERE n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_ts_dict'::regclass
                  AND x.objid = d.oid AND x.deptype = 'e')
"""
_CONFIGURATIONS = """
SELECT format('%%I.%%I', n.nspname, c.cfgname),
       (SELECT format('%%I.%%I', pn.nspname, p.prsname) FROM pg_ts_parser p
        JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
       COALESCE((SELECT string_agg(m.alias || ' WITH ' || m.dicts, ';' ORDER BY m.tokid)
        FROM (SELECT tt.tokid, tt.alias, string_agg(format('%%I.%%I', dn.nspname, dd.dictname),
                     ', ' ORDER BY cm.mapseqno) AS dicts
              FROM pg_ts_config_map cm JOIN ts_token_type(c.cfgparser) tt
                ON tt.tokid = cm.maptokentype
              JOIN pg_ts_dict dd ON dd.oid = cm.mapdict
              JOIN pg_namespace dn ON dn.oid = dd.dictnamespace
              WHERE cm.mapcfg = c.oid GROUP BY tt.tokid, tt.alias) m), '')
FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
WHERE n.nspname <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_ts_config'::regclass
                  AND x.objid = c.oid AND x.deptype = 'e')
"""


def _read(conn: Connection, query: str, exclusions: Exclusions) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in rows(conn, query,
                                                   {"skip": skip_schemas(exclusions)})}


def _mappings(text: str) -> dict[str, str]:
    return dict(item.split(" WITH ", 1) for item in text.split(";") if item)


def _create_configuration(name: str, parser: str, mappings: str) -> list[str]:
    created = [f"CREATE TEXT SEARCH CONFIGURATION {name} (PARSER = {parser});"]
    created += [f"ALTER TEXT SEARCH CONFIGURATION {name} ADD MAPPING FOR {alias} WITH {dicts};"
                for alias, dicts in _mappings(mappings).items()]
    return created


def _option_names(options: str | None) -> list[str]:
    """Option names of a `dictinitoption` text (parsed, quotes and all, by PostgreSQL's parser)."""
    if not options:
        return []
    tree = node(f"CREATE TEXT SEARCH DICTIONARY x (TEMPLATE = t, {options})")
    return [d.defname for d in tree.definition if d.defname != "template"] if tree else []


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Create, change and drop text search dictionaries and configurations."""
    dicts_before = _read(ctx.source, _DICTIONARIES, ctx.exclusions)
    dicts_after = _read(ctx.target, _DICTIONARIES, ctx.exclusions)
    cfgs_before = _read(ctx.source, _CONFIGURATIONS, ctx.exclusions)
    cfgs_after = _read(ctx.target, _CONFIGURATIONS, ctx.exclusions)
    early, late = [], []
    for name in sorted(dicts_after):
        template, options = dicts_after[name]
        old = dicts_before.get(name)
        if old is None:
            early.append(f"CREATE TEXT SEARCH DICTIONARY {name} (TEMPLATE = {template}"
                         + (f", {options}" if options else "") + ");")
        elif old[0] == template and old[1] != options:
            # A changed template cannot be altered: the proof refuses, naming the dictionary.
            gone = [n for n in _option_names(old[1]) if n not in _option_names(options)]
            early.append(f"ALTER TEXT SEARCH DICTIONARY {name} ("
                         + ", ".join([*gone, *([options] if options else [])]) + ");")
    for name in sorted(cfgs_after):
        parser, mappings = cfgs_after[name]
        old = cfgs_before.get(name)
        if old is None:
            early += _create_configuration(name, parser, mappings)
        elif old[0] != parser:
            early.append(f"DROP TEXT SEARCH CONFIGURATION {name};")
            early += _create_configuration(name, parser, mappings)
        elif old[1] != mappings:
            was, new = _mappings(old[1]), _mappings(mappings)
            prefix = f"ALTER TEXT SEARCH CONFIGURATION {name}"
            for alias in sorted(set(was) - set(new)):
                early.append(f"{prefix} DROP MAPPING FOR {alias};")
            for alias, dicts in new.items():
                if alias not in was:
                    early.append(f"{prefix} ADD MAPPING FOR {alias} WITH {dicts};")
                elif was[alias] != dicts:
                    early.append(f"{prefix} ALTER MAPPING FOR {alias} WITH {dicts};")
    late += [f"DROP TEXT SEARCH CONFIGURATION {n};" for n in sorted(set(cfgs_before)
                                                                     - set(cfgs_after))]
    late += [f"DROP TEXT SEARCH DICTIONARY {n};" for n in sorted(set(dicts_before)
                                                                 - set(dicts_after))]
    if not early and not late:
        return statements
    position = leading_position(statements)
    return statements[:position] + early + statements[position:] + late
