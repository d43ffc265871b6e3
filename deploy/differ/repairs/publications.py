"""Publications (logical replication): migra does not know them.

A new publication is created after migra's statements (its tables exist by then), a
removed one is dropped before them. Changes are made in place, as subscribers expect
(`ALTER PUBLICATION … SET (…)`, `SET TABLE …`, `DROP TABLE …`, `DROP TABLES IN SCHEMA …`);
only switching FOR ALL TABLES on or off re-creates it (drop first, create last).
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import comment_sql, ident, node, rows, server_version

_QUERY = """
SELECT p.pubname, p.puballtables,
       concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END,
         CASE WHEN p.pubupdate THEN 'update' END, CASE WHEN p.pubdelete THEN 'delete' END,
         CASE WHEN p.pubtruncate THEN 'truncate' END),
       p.pubviaroot,
       (SELECT string_agg(format('%%I.%%I', tn.nspname, tc.relname) {detail}, ', ' ORDER BY 1)
        FROM pg_publication_rel pr JOIN pg_class tc ON tc.oid = pr.prrelid
        JOIN pg_namespace tn ON tn.oid = tc.relnamespace WHERE pr.prpubid = p.oid),
       {schemas},
       obj_description(p.oid, 'pg_publication')
FROM pg_publication p
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_publication'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
"""
# PostgreSQL 15 added column lists, row filters and TABLES IN SCHEMA.
_DETAIL_15 = (
    "|| COALESCE(' (' || (SELECT string_agg(format('%%I', pa.attname), ', ' ORDER BY pa.attnum)"
    " FROM pg_attribute pa WHERE pa.attrelid = pr.prrelid AND pa.attnum = ANY(pr.prattrs))"
    " || ')', '') || COALESCE(' WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')', '')"
)
_SCHEMAS_15 = (
    "(SELECT string_agg(format('%%I', sn.nspname), ', ' ORDER BY 1)"
    " FROM pg_publication_namespace ps JOIN pg_namespace sn ON sn.oid = ps.pnnspid"
    " WHERE ps.pnpubid = p.oid)"
)


def _publications(conn: Connection) -> dict[str, tuple]:
    modern = server_version(conn) >= 150000
    query = _QUERY.format(detail=_DETAIL_15 if modern else "",
                          schemas=_SCHEMAS_15 if modern else "NULL")
    return {row[0]: tuple(row[1:]) for row in rows(conn, query)}


def _create(name: str, spec: tuple) -> str:
    all_tables, publish, via_root, tables, schemas, _comment = spec
    targets = []
    if tables:
        targets.append(f"TABLE {tables}")
    if schemas:
        targets.append(f"TABLES IN SCHEMA {schemas}")
    what = " FOR ALL TABLES" if all_tables else (" FOR " + ", ".join(targets) if targets else "")
    return f"CREATE PUBLICATION {ident(name)}{what} WITH ({_options(publish, via_root)});"


def _options(publish: str, via_root: bool) -> str:
    return f"publish = '{publish}', publish_via_partition_root = {str(via_root).lower()}"


def _alter_members(name: str, old: tuple, new: tuple) -> list[str]:
    """ALTER PUBLICATION statements that turn `old`'s tables and schemas into `new`'s."""
    tables, schemas = new[3], new[4]
    publication = ident(name)
    if tables or schemas:
        targets = ([f"TABLE {tables}"] if tables else []) + (
            [f"TABLES IN SCHEMA {schemas}"] if schemas else [])
        # SET replaces every member (tables and schemas) at once.
        return [f"ALTER PUBLICATION {publication} SET {', '.join(targets)};"]
    altered = []
    if old[3]:
        altered.append(f"ALTER PUBLICATION {publication} DROP TABLE "
                       f"{', '.join(_names(old[3]))};")
    if old[4]:
        altered.append(f"ALTER PUBLICATION {publication} DROP TABLES IN SCHEMA {old[4]};")
    return altered


def _names(tables: str) -> list[str]:
    """Table names of a member list `a (x, y) WHERE (…), b` (parsed by PostgreSQL's parser)."""
    tree = node(f"CREATE PUBLICATION p FOR TABLE {tables}")
    if tree is None:
        return []
    return [f"{ident(o.pubtable.relation.schemaname)}.{ident(o.pubtable.relation.relname)}"
            for o in tree.pubobjects]


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Drop removed/re-created publications first; create or alter the others last."""
    before, after = _publications(ctx.source), _publications(ctx.target)
    drops, creates = [], []
    for name in sorted(before):
        if name not in after or after[name][0] != before[name][0]:
            drops.append(f"DROP PUBLICATION {ident(name)};")
    for name in sorted(after):
        spec, old = after[name], before.get(name)
        if old is None or spec[0] != old[0]:
            creates.append(_create(name, spec))
            if spec[5] is not None:
                creates.append(comment_sql(f"PUBLICATION {ident(name)}", spec[5]))
            continue
        if spec[3:5] != old[3:5]:
            creates += _alter_members(name, old, spec)
        if spec[1:3] != old[1:3]:
            creates.append(f"ALTER PUBLICATION {ident(name)} SET ({_options(spec[1], spec[2])});")
        if spec[5] != old[5]:
            creates.append(comment_sql(f"PUBLICATION {ident(name)}", spec[5]))
    return drops + statements + creates
