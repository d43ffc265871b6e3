"""Schema fingerprints: a canonical description of a database's schema, and its sha256.

The description is a flat mapping `object key -> attributes`, read from the catalogs over
one connection. It leaves out OIDs, owners, database and host names, column order of
tables (migra cannot reorder columns), extension versions, extension-owned objects, the
tool's history schema and configured exclusions, so two databases built the same way
get the same fingerprint whatever server they live on.

It deliberately covers more than migra manages (comments, sequence and identity options,
FORCE ROW LEVEL SECURITY, domains, composite-type attribute order, partition index
attachment, constraint validity, and every kind in `_OPTIONAL_KINDS`: statistics, event
triggers, publications, operators, text search, casts, foreign data, per-column and TOAST
settings, …): a plan that misses one of those never lands on its `to`, so the gap is
caught instead of silently passed. The README lists what is left out, and why.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from psycopg2.extensions import TRANSACTION_STATUS_IDLE

Description = dict[str, str]

# Schemas that belong to the server itself.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# Filters shared by every query: objects in user schemas, not created by an extension.
_USER_NS = """
    n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
    AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%' AND n.nspname <> ALL(%(skip_schemas)s)
"""


def _not_extension(catalog: str, oid: str) -> str:
    """SQL condition: the object `oid` of `catalog` was not created by an extension."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
            f"'pg_catalog.{catalog}'::regclass AND d.objid = {oid} AND d.deptype = 'e')")


def _comment(catalog: str, oid: str, subid: str = "0") -> str:
    """SQL expression: the comment on an object, as obj_description / col_description read it.

    A scalar subquery instead of those SQL functions: each of their calls runs a query of
    its own, which made comments a third of describe()'s server time at 1000 tables.
    """
    return (f"(SELECT ds.description FROM pg_description ds WHERE ds.objoid = {oid} AND "
            f"ds.classoid = 'pg_catalog.{catalog}'::regclass AND ds.objsubid = {subid})")


_QUERIES: dict[str, str] = {
    "schema": f"""
        SELECT format('%%I', n.nspname), '', {_comment("pg_namespace", "n.oid")}
        FROM pg_namespace n
        WHERE {_USER_NS} AND {_not_extension("pg_namespace", "n.oid")}
    """,
    "extension": """
        SELECT format('%%I', e.extname), 'schema=' || n.nspname, NULL
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    """,
    "relation": f"""
        SELECT format('%%I.%%I', n.nspname, c.relname),
               concat_ws(' ',
                 'kind=' || c.relkind::text,
                 CASE WHEN c.relpersistence = 'u' THEN 'unlogged' END,
                 CASE WHEN c.relrowsecurity THEN 'rls' END,
                 CASE WHEN c.relforcerowsecurity THEN 'force-rls' END,
                 CASE WHEN c.relkind IN ('r', 'p') AND c.relreplident <> 'd'
                   THEN 'replica-identity=' || c.relreplident::text END,
                 CASE WHEN c.relkind = 'p' THEN 'partition-by=' || pg_get_partkeydef(c.oid) END,
                 CASE WHEN c.relispartition THEN
                   'partition-of=' || (SELECT format('%%I.%%I', pn.nspname, pc.relname)
                     FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                     JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid)
                   || ' ' || pg_get_expr(c.relpartbound, c.oid) END,
                 CASE WHEN NOT c.relispartition AND EXISTS (
                   SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) THEN
                   'inherits=' || (SELECT string_agg(format('%%I.%%I', pn.nspname, pc.relname),
                       ',' ORDER BY i.inhseqno)
                     FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                     JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid)
                 END,
                 CASE WHEN c.reloptions IS NOT NULL THEN
                   'options=' || array_to_string(c.reloptions, ',') END,
                 CASE WHEN c.relkind IN ('v', 'm') THEN
                   'definition=' || pg_get_viewdef(c.oid) END),
               {_comment("pg_class", "c.oid")}
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_NS}
          AND {_not_extension("pg_class", "c.oid")}
    """,
    "column": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
               concat_ws(' ',
                 'type=' || format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attnotnull THEN 'not-null' END,
                 CASE WHEN a.attidentity <> '' THEN 'identity=' || a.attidentity::text END,
                 CASE WHEN a.attgenerated = 'v' THEN  -- PostgreSQL 18: computed on read
                   'generated-virtual=' || pg_get_expr(ad.adbin, ad.adrelid)
                   WHEN a.attgenerated <> '' THEN
                   'generated=' || pg_get_expr(ad.adbin, ad.adrelid)
                   WHEN ad.adbin IS NOT NULL THEN 'default=' || pg_get_expr(ad.adbin, ad.adrelid)
                 END,
                 CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                   'collate=' || (SELECT format('%%I.%%I', cn.nspname, co.collname)
                     FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                     WHERE co.oid = a.attcollation) END,
                 CASE WHEN a.attstorage <> t.typstorage THEN 'storage=' || a.attstorage::text END,
                 CASE WHEN c.relkind = 'c' THEN
                   'position=' || (SELECT count(*) FROM pg_attribute b WHERE b.attrelid = c.oid
                     AND b.attnum > 0 AND NOT b.attisdropped AND b.attnum <= a.attnum) END),
               {_comment("pg_class", "c.oid", "a.attnum")}
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_USER_NS}
          AND {_not_extension("pg_class", "c.oid")}
          AND (c.relkind <> 'c' OR EXISTS (SELECT 1 FROM pg_type ct WHERE ct.typrelid = c.oid
               AND {_not_extension("pg_type", "ct.oid")}))
    """,
    "constraint": f"""
        SELECT CASE WHEN con.conrelid <> 0
                 THEN format('%%I.%%I.%%I', n.nspname, c.relname, con.conname)
                 ELSE format('%%I.%%I.%%I', n.nspname, ty.typname, con.conname) END,
               concat_ws(' ', pg_get_constraintdef(con.oid),
                 CASE WHEN NOT con.convalidated THEN 'not-validated' END),
               {_comment("pg_constraint", "con.oid")}
        FROM pg_constraint con
        JOIN pg_namespace n ON n.oid = con.connamespace
        LEFT JOIN pg_class c ON c.oid = con.conrelid
        LEFT JOIN pg_type ty ON ty.oid = con.contypid
        WHERE {_USER_NS} AND {_not_extension("pg_constraint", "con.oid")}
          AND (con.conparentid = 0 OR con.contype <> 'f')
          -- PostgreSQL 18 keeps NOT NULL as constraint rows too; attnotnull/typnotnull already
          -- describe them (and 14-17 have no such rows). Only 18's non-default forms count.
          AND (con.contype <> 'n' OR NOT con.convalidated OR con.connoinherit)
    """,
    "index": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, tc.relname, ic.relname),
               concat_ws(' ', pg_get_indexdef(i.indexrelid),
                 CASE WHEN NOT i.indisvalid THEN 'invalid' END,
                 CASE WHEN i.indisclustered THEN 'clustered' END,
                 CASE WHEN ic.reloptions IS NOT NULL THEN
                   'options=' || array_to_string(ic.reloptions, ',') END,
                 CASE WHEN EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = ic.oid) THEN
                   'attached-to=' || (SELECT format('%%I.%%I', pn.nspname, pc.relname)
                     FROM pg_inherits h JOIN pg_class pc ON pc.oid = h.inhparent
                     JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                     WHERE h.inhrelid = ic.oid) END),
               {_comment("pg_class", "ic.oid")}
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class tc ON tc.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_class", "tc.oid")}
    """,
    "sequence": f"""
        SELECT format('%%I.%%I', n.nspname, c.relname),
               concat_ws(' ', 'type=' || format_type(s.seqtypid, NULL),
                 'start=' || s.seqstart, 'increment=' || s.seqincrement,
                 'min=' || s.seqmin, 'max=' || s.seqmax, 'cache=' || s.seqcache,
                 CASE WHEN s.seqcycle THEN 'cycle' END,
                 CASE WHEN c.relpersistence = 'u' THEN 'unlogged' END,
                 (SELECT CASE d.deptype WHEN 'i' THEN 'identity-of=' ELSE 'owned-by=' END
                         || format('%%I.%%I.%%I', tn.nspname, tc.relname, ta.attname)
                  FROM pg_depend d
                  JOIN pg_class tc ON tc.oid = d.refobjid
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                  JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                  LIMIT 1)),
               {_comment("pg_class", "c.oid")}
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_class", "c.oid")}
    """,
    "type": f"""
        SELECT format('%%I.%%I', n.nspname, t.typname),
               CASE t.typtype
                 WHEN 'e' THEN 'enum=' || (SELECT string_agg(quote_literal(e.enumlabel), ','
                                            ORDER BY e.enumsortorder)
                                           FROM pg_enum e WHERE e.enumtypid = t.oid)
                 WHEN 'd' THEN concat_ws(' ', 'domain=' || format_type(t.typbasetype, t.typtypmod),
                                CASE WHEN t.typnotnull THEN 'not-null' END,
                                CASE WHEN t.typdefault IS NOT NULL
                                  THEN 'default=' || t.typdefault END)
                 WHEN 'c' THEN 'composite'
                 WHEN 'r' THEN 'range=' || (SELECT format_type(r.rngsubtype, NULL)
                                            FROM pg_range r WHERE r.rngtypid = t.oid)
                 ELSE 'kind=' || t.typtype::text END,
               {_comment("pg_type", "t.oid")}
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c')
          AND {_USER_NS} AND {_not_extension("pg_type", "t.oid")}
    """,
    "function": f"""
        SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,
                      pg_get_function_identity_arguments(p.oid)),
               CASE WHEN p.prokind = 'a' THEN 'aggregate returns '
                         || format_type(p.prorettype, NULL)
                    ELSE pg_get_functiondef(p.oid) END,
               {_comment("pg_proc", "p.oid")}
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NS} AND {_not_extension("pg_proc", "p.oid")}
    """,
    "trigger": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, tg.tgname),
               concat_ws(' ', pg_get_triggerdef(tg.oid),
                 CASE WHEN tg.tgenabled <> 'O' THEN 'enabled=' || tg.tgenabled::text END),
               {_comment("pg_trigger", "tg.oid")}
        FROM pg_trigger tg
        JOIN pg_class c ON c.oid = tg.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT tg.tgisinternal AND {_USER_NS} AND {_not_extension("pg_trigger", "tg.oid")}
    """,
    "policy": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, p.polname),
               concat_ws(' ', 'cmd=' || p.polcmd::text,
                 CASE WHEN NOT p.polpermissive THEN 'restrictive' END,
                 'roles=' || (SELECT string_agg(CASE WHEN r = 0 THEN 'public'
                              ELSE (SELECT rolname FROM pg_roles WHERE oid = r) END, ',' ORDER BY 1)
                              FROM unnest(p.polroles) r),
                 'using=' || pg_get_expr(p.polqual, p.polrelid),
                 'check=' || pg_get_expr(p.polwithcheck, p.polrelid)),
               {_comment("pg_policy", "p.oid")}
        FROM pg_policy p
        JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS}
    """,
    "rule": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, r.rulename),
               pg_get_ruledef(r.oid), {_comment("pg_rewrite", "r.oid")}
        FROM pg_rewrite r
        JOIN pg_class c ON c.oid = r.ev_class
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND {_USER_NS} AND {_not_extension("pg_rewrite", "r.oid")}
    """,
    "collation": f"""
        SELECT format('%%I.%%I', n.nspname, co.collname),
               -- ICU (and, from 17, builtin) locales live in a column whose name changed
               -- between majors (14 kept an ICU locale in collcollate/collctype): one form.
               concat_ws(' ', 'provider=' || co.collprovider::text,
                         'collate=' || CASE WHEN co.collprovider <> 'i' THEN co.collcollate END,
                         'ctype=' || CASE WHEN co.collprovider <> 'i' THEN co.collctype END,
                         CASE WHEN NOT co.collisdeterministic THEN 'nondeterministic' END,
                         'locale=' || COALESCE(to_jsonb(co) ->> 'colllocale',
                                               to_jsonb(co) ->> 'colliculocale',
                                               CASE WHEN co.collprovider = 'i'
                                                 THEN co.collcollate END),
                         'icu-rules=' || (to_jsonb(co) ->> 'collicurules')),
               {_comment("pg_collation", "co.oid")}
        FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_collation", "co.oid")}
    """,
}

# Object kinds added after the first plans were committed. Each emits a key only for objects
# that exist or attributes that are not the default, so schemas that use none of them keep
# the fingerprint they had (committed plans still replay). Objects outside schemas (casts,
# event triggers, …) count as user objects when their OID is not a built-in one (>= 16384,
# FirstNormalObjectId).
_USER_OID = "{oid} >= 16384"
_OPTIONAL_KINDS: dict[str, str] = {
    # Per-column settings: SET STATISTICS, attribute options (n_distinct), SET COMPRESSION,
    # foreign-table column options, and a child column also declared locally ("merged":
    # it survives when the parent drops the column). Indexes carry statistics targets too.
    "column-option": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
               concat_ws(' ',
                 -- Direct columns, not to_jsonb(a) (which serialised every attribute row):
                 -- attstattarget is -1 (14-16) or NULL (17+) by default; attcompression is 14+.
                 CASE WHEN a.attstattarget >= 0 THEN 'statistics=' || a.attstattarget END,
                 -- Only the options ALTER COLUMN … SET (…) accepts: a server build may keep
                 -- private entries there (seen: pg_attver=… in a container image).
                 'options=' || (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) o
                   WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')),
                 'compression=' || NULLIF(a.attcompression::text, ''),
                 CASE WHEN a.attfdwoptions IS NOT NULL
                   THEN 'fdw-options=' || array_to_string(a.attfdwoptions, ',') END,
                 CASE WHEN a.attinhcount > 0 AND a.attislocal AND NOT c.relispartition
                   THEN 'merged' END),
               NULL
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped
          -- Cheap columns first: every attribute above is NULL unless one of these holds.
          AND (a.attstattarget >= 0 OR a.attoptions IS NOT NULL
               OR a.attcompression::text <> '' OR a.attfdwoptions IS NOT NULL
               OR (a.attinhcount > 0 AND a.attislocal))
          AND c.relkind IN ('r', 'p', 'm', 'f', 'i', 'I') AND {_USER_NS}
          AND {_not_extension("pg_class", "c.oid")}
    """,
    # Per-relation settings outside `options=`: TOAST storage parameters, a table access
    # method other than heap, REPLICA IDENTITY USING INDEX's index, foreign-table server.
    "relation-option": f"""
        SELECT format('%%I.%%I', n.nspname, c.relname),
               concat_ws(' ',
                 (SELECT 'toast-options=' || array_to_string(tc.reloptions, ',')
                  FROM pg_class tc WHERE tc.oid = c.reltoastrelid AND tc.reloptions IS NOT NULL),
                 (SELECT 'access-method=' || am.amname FROM pg_am am
                  WHERE am.oid = c.relam AND c.relkind IN ('r', 'm') AND am.amname <> 'heap'),
                 (SELECT 'replica-identity-index=' || format('%%I', ic.relname)
                  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = c.oid AND i.indisreplident),
                 (SELECT concat_ws(' ', 'server=' || format('%%I', s.srvname),
                           'fdw-options=' || array_to_string(ft.ftoptions, ','))
                  FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
                  WHERE ft.ftrelid = c.oid)),
               NULL
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'f') AND {_USER_NS}
          AND {_not_extension("pg_class", "c.oid")}
    """,
    "statistics": f"""
        SELECT format('%%I.%%I', n.nspname, s.stxname),
               concat_ws(' ', pg_get_statisticsobjdef(s.oid),
                 CASE WHEN (to_jsonb(s) ->> 'stxstattarget')::int >= 0
                   THEN 'statistics=' || (to_jsonb(s) ->> 'stxstattarget') END),
               {_comment("pg_statistic_ext", "s.oid")}
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_statistic_ext", "s.oid")}
    """,
    "event-trigger": f"""
        SELECT format('%%I', e.evtname),
               concat_ws(' ', 'on=' || e.evtevent, 'function=' || e.evtfoid::regprocedure::text,
                 'tags=' || array_to_string(e.evttags, ','),
                 CASE WHEN e.evtenabled <> 'O' THEN 'enabled=' || e.evtenabled::text END),
               {_comment("pg_event_trigger", "e.oid")}
        FROM pg_event_trigger e WHERE {_not_extension("pg_event_trigger", "e.oid")}
    """,
    "publication": f"""
        SELECT format('%%I', p.pubname),
               concat_ws(' ', CASE WHEN p.puballtables THEN 'all-tables' END,
                 'publish=' || concat_ws(',', CASE WHEN p.pubinsert THEN 'insert' END,
                   CASE WHEN p.pubupdate THEN 'update' END,
                   CASE WHEN p.pubdelete THEN 'delete' END,
                   CASE WHEN p.pubtruncate THEN 'truncate' END),
                 CASE WHEN p.pubviaroot THEN 'via-root' END,
                 'tables=' || (SELECT string_agg(format('%%I.%%I', tn.nspname, tc.relname)
                     {{publication_table_detail}}, ',' ORDER BY 1)
                   FROM pg_publication_rel pr JOIN pg_class tc ON tc.oid = pr.prrelid
                   JOIN pg_namespace tn ON tn.oid = tc.relnamespace WHERE pr.prpubid = p.oid)
                 {{publication_schemas}}),
               {_comment("pg_publication", "p.oid")}
        FROM pg_publication p WHERE {_not_extension("pg_publication", "p.oid")}
    """,
    "operator": f"""
        SELECT format('%%I.%%s(%%s,%%s)', n.nspname, o.oprname,
                      COALESCE(format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
                      COALESCE(format_type(NULLIF(o.oprright, 0), NULL), 'NONE')),
               concat_ws(' ', 'function=' || o.oprcode::regprocedure::text,
                 'returns=' || format_type(o.oprresult, NULL),
                 CASE WHEN o.oprcom <> 0 THEN 'commutator=' || o.oprcom::regoperator::text END,
                 CASE WHEN o.oprnegate <> 0 THEN 'negator=' || o.oprnegate::regoperator::text END,
                 CASE WHEN o.oprrest <> 0 THEN 'restrict=' || o.oprrest::regprocedure::text END,
                 CASE WHEN o.oprjoin <> 0 THEN 'join=' || o.oprjoin::regprocedure::text END,
                 CASE WHEN o.oprcanhash THEN 'hashes' END,
                 CASE WHEN o.oprcanmerge THEN 'merges' END),
               {_comment("pg_operator", "o.oid")}
        FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_operator", "o.oid")}
    """,
    "operator-class": f"""
        SELECT format('%%I.%%I USING %%I', n.nspname, oc.opcname, am.amname),
               concat_ws(' ', 'for=' || format_type(oc.opcintype, NULL),
                 'family=' || (SELECT format('%%I.%%I', fn.nspname, f.opfname) FROM pg_opfamily f
                   JOIN pg_namespace fn ON fn.oid = f.opfnamespace WHERE f.oid = oc.opcfamily),
                 CASE WHEN oc.opcdefault THEN 'default' END,
                 CASE WHEN oc.opckeytype <> 0 THEN 'storage=' || format_type(oc.opckeytype, NULL)
                 END),
               {_comment("pg_opclass", "oc.oid")}
        FROM pg_opclass oc JOIN pg_namespace n ON n.oid = oc.opcnamespace
        JOIN pg_am am ON am.oid = oc.opcmethod
        WHERE {_USER_NS} AND {_not_extension("pg_opclass", "oc.oid")}
    """,
    "operator-family": f"""
        SELECT format('%%I.%%I USING %%I', n.nspname, f.opfname, am.amname),
               concat_ws(' ',
                 'operators=' || (SELECT string_agg(format('%%s:%%s%%s', ao.amopstrategy,
                     ao.amopopr::regoperator, CASE WHEN ao.amoppurpose = 'o' THEN
                     ':order-by:' || ao.amopsortfamily::regclass::text ELSE '' END), ','
                     ORDER BY 1) FROM pg_amop ao WHERE ao.amopfamily = f.oid),
                 'functions=' || (SELECT string_agg(format('%%s:%%s:%%s:%%s', ap.amprocnum,
                     format_type(ap.amproclefttype, NULL), format_type(ap.amprocrighttype, NULL),
                     ap.amproc::regprocedure), ',' ORDER BY 1)
                   FROM pg_amproc ap WHERE ap.amprocfamily = f.oid)),
               {_comment("pg_opfamily", "f.oid")}
        FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace
        JOIN pg_am am ON am.oid = f.opfmethod
        WHERE {_USER_NS} AND {_not_extension("pg_opfamily", "f.oid")}
    """,
    "text-search-configuration": f"""
        SELECT format('%%I.%%I', n.nspname, c.cfgname),
               concat_ws(' ',
                 'parser=' || (SELECT format('%%I.%%I', pn.nspname, p.prsname) FROM pg_ts_parser p
                   JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
                 'mapping=' || (SELECT string_agg(format('%%s:%%s', m.maptokentype,
                     (SELECT format('%%I.%%I', dn.nspname, md.dictname) FROM pg_ts_dict md
                      JOIN pg_namespace dn ON dn.oid = md.dictnamespace WHERE md.oid = m.mapdict)),
                     ',' ORDER BY m.maptokentype, m.mapseqno)
                   FROM pg_ts_config_map m WHERE m.mapcfg = c.oid)),
               {_comment("pg_ts_config", "c.oid")}
        FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_ts_config", "c.oid")}
    """,
    "text-search-dictionary": f"""
        SELECT format('%%I.%%I', n.nspname, td.dictname),
               concat_ws(' ', 'template=' || (SELECT format('%%I.%%I', tn.nspname, t.tmplname)
                   FROM pg_ts_template t JOIN pg_namespace tn ON tn.oid = t.tmplnamespace
                   WHERE t.oid = td.dicttemplate),
                 'options=' || td.dictinitoption),
               {_comment("pg_ts_dict", "td.oid")}
        FROM pg_ts_dict td JOIN pg_namespace n ON n.oid = td.dictnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_ts_dict", "td.oid")}
    """,
    "text-search-parser": f"""
        SELECT format('%%I.%%I', n.nspname, p.prsname),
               concat_ws(' ', 'start=' || p.prsstart::regprocedure::text,
                 'token=' || p.prstoken::regprocedure::text, 'end=' || p.prsend::regprocedure::text,
                 CASE WHEN p.prsheadline <> 0 THEN 'headline=' || p.prsheadline::regprocedure::text
                 END, 'lextypes=' || p.prslextype::regprocedure::text),
               {_comment("pg_ts_parser", "p.oid")}
        FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_ts_parser", "p.oid")}
    """,
    "text-search-template": f"""
        SELECT format('%%I.%%I', n.nspname, t.tmplname),
               concat_ws(' ', CASE WHEN t.tmplinit <> 0
                   THEN 'init=' || t.tmplinit::regprocedure::text END,
                 'lexize=' || t.tmpllexize::regprocedure::text),
               {_comment("pg_ts_template", "t.oid")}
        FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_ts_template", "t.oid")}
    """,
    "aggregate": f"""
        SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,
                      pg_get_function_identity_arguments(p.oid)),
               concat_ws(' ', 'kind=' || a.aggkind::text, 'sfunc=' || a.aggtransfn::text,
                 'stype=' || format_type(a.aggtranstype, NULL),
                 CASE WHEN a.aggfinalfn <> 0 THEN 'finalfunc=' || a.aggfinalfn::text END,
                 CASE WHEN a.aggcombinefn <> 0 THEN 'combinefunc=' || a.aggcombinefn::text END,
                 'initcond=' || a.agginitval,
                 CASE WHEN a.aggsortop <> 0 THEN 'sortop=' || a.aggsortop::regoperator::text END,
                 CASE WHEN a.aggmtransfn <> 0 THEN 'msfunc=' || a.aggmtransfn::text END),
               NULL
        FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NS} AND {_not_extension("pg_proc", "p.oid")}
    """,
    # Options of range types beyond the subtype: collation, canonical and subtype_diff
    # functions, a non-default subtype operator class.
    "range-option": f"""
        SELECT format('%%I.%%I', n.nspname, t.typname),
               concat_ws(' ',
                 (SELECT 'collate=' || format('%%I.%%I', cn.nspname, co.collname)
                  FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = r.rngcollation AND r.rngcollation <> (SELECT typcollation
                    FROM pg_type st WHERE st.oid = r.rngsubtype)),
                 CASE WHEN r.rngcanonical <> 0 THEN 'canonical=' || r.rngcanonical::text END,
                 CASE WHEN r.rngsubdiff <> 0 THEN 'subtype-diff=' || r.rngsubdiff::text END,
                 (SELECT 'opclass=' || format('%%I.%%I', ocn.nspname, oc.opcname)
                  FROM pg_opclass oc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
                  WHERE oc.oid = r.rngsubopc AND NOT oc.opcdefault)),
               NULL
        FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_USER_NS} AND {_not_extension("pg_type", "t.oid")}
    """,
    # CREATE TYPE with input/output functions (not enums, domains, composites, ranges, and
    # not the array types PostgreSQL creates beside each type).
    "base-type": f"""
        SELECT format('%%I.%%I', n.nspname, t.typname),
               concat_ws(' ', 'input=' || t.typinput::text, 'output=' || t.typoutput::text,
                 CASE WHEN t.typreceive <> 0 THEN 'receive=' || t.typreceive::text END,
                 CASE WHEN t.typsend <> 0 THEN 'send=' || t.typsend::text END,
                 CASE WHEN t.typmodin <> 0 THEN 'typmod-in=' || t.typmodin::text END,
                 CASE WHEN t.typmodout <> 0 THEN 'typmod-out=' || t.typmodout::text END,
                 CASE WHEN t.typanalyze <> 0 THEN 'analyze=' || t.typanalyze::text END,
                 'length=' || t.typlen, CASE WHEN t.typbyval THEN 'by-value' END,
                 'align=' || t.typalign::text, 'storage=' || t.typstorage::text,
                 'category=' || t.typcategory::text,
                 CASE WHEN t.typispreferred THEN 'preferred' END,
                 'default=' || t.typdefault,
                 CASE WHEN t.typelem <> 0 THEN 'element=' || format_type(t.typelem, NULL) END,
                 CASE WHEN t.typcollation <> 0 THEN 'collatable' END),
               {_comment("pg_type", "t.oid")}
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype = 'b' AND {_USER_NS} AND {_not_extension("pg_type", "t.oid")}
          AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
    """,
    "cast": f"""
        SELECT format('(%%s AS %%s)', format_type(c.castsource, NULL),
                      format_type(c.casttarget, NULL)),
               concat_ws(' ', CASE WHEN c.castfunc <> 0
                   THEN 'function=' || c.castfunc::regprocedure::text END,
                 'context=' || c.castcontext::text, 'method=' || c.castmethod::text),
               {_comment("pg_cast", "c.oid")}
        FROM pg_cast c WHERE {_USER_OID.format(oid="c.oid")}
          AND {_not_extension("pg_cast", "c.oid")}
          -- casts a range type creates for its multirange belong to the type
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_cast'::regclass
                          AND d.objid = c.oid AND d.deptype = 'i')
    """,
    "conversion": f"""
        SELECT format('%%I.%%I', n.nspname, c.conname),
               concat_ws(' ', 'for=' || pg_encoding_to_char(c.conforencoding),
                 'to=' || pg_encoding_to_char(c.contoencoding),
                 'function=' || c.conproc::regprocedure::text,
                 CASE WHEN c.condefault THEN 'default' END),
               {_comment("pg_conversion", "c.oid")}
        FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE {_USER_NS} AND {_USER_OID.format(oid="c.oid")}
          AND {_not_extension("pg_conversion", "c.oid")}
    """,
    "foreign-data-wrapper": f"""
        SELECT format('%%I', w.fdwname),
               concat_ws(' ',
                 CASE WHEN w.fdwhandler <> 0 THEN 'handler=' || w.fdwhandler::regprocedure::text
                 END,
                 CASE WHEN w.fdwvalidator <> 0
                   THEN 'validator=' || w.fdwvalidator::regprocedure::text END,
                 'options=' || array_to_string(w.fdwoptions, ',')),
               {_comment("pg_foreign_data_wrapper", "w.oid")}
        FROM pg_foreign_data_wrapper w WHERE {_not_extension("pg_foreign_data_wrapper", "w.oid")}
    """,
    "server": f"""
        SELECT format('%%I', s.srvname),
               concat_ws(' ', 'wrapper=' || (SELECT format('%%I', w.fdwname)
                   FROM pg_foreign_data_wrapper w WHERE w.oid = s.srvfdw),
                 'type=' || s.srvtype, 'version=' || s.srvversion,
                 'options=' || array_to_string(s.srvoptions, ',')),
               {_comment("pg_foreign_server", "s.oid")}
        FROM pg_foreign_server s WHERE {_not_extension("pg_foreign_server", "s.oid")}
    """,
    "transform": f"""
        SELECT format('FOR %%s LANGUAGE %%I', format_type(t.trftype, NULL),
                      (SELECT lanname FROM pg_language l WHERE l.oid = t.trflang)),
               concat_ws(' ', CASE WHEN t.trffromsql <> 0
                   THEN 'from-sql=' || t.trffromsql::regprocedure::text END,
                 CASE WHEN t.trftosql <> 0 THEN 'to-sql=' || t.trftosql::regprocedure::text END),
               NULL
        FROM pg_transform t WHERE {_USER_OID.format(oid="t.oid")}
          AND {_not_extension("pg_transform", "t.oid")}
    """,
    "access-method": f"""
        SELECT format('%%I', am.amname),
               concat_ws(' ', 'type=' || am.amtype::text,
                 'handler=' || am.amhandler::regprocedure::text),
               {_comment("pg_am", "am.oid")}
        FROM pg_am am WHERE {_USER_OID.format(oid="am.oid")}
          AND {_not_extension("pg_am", "am.oid")}
    """,
    "language": f"""
        SELECT format('%%I', l.lanname),
               concat_ws(' ', CASE WHEN l.lanpltrusted THEN 'trusted' END,
                 CASE WHEN l.lanplcallfoid <> 0
                   THEN 'handler=' || l.lanplcallfoid::regprocedure::text END,
                 CASE WHEN l.laninline <> 0 THEN 'inline=' || l.laninline::regprocedure::text END,
                 CASE WHEN l.lanvalidator <> 0
                   THEN 'validator=' || l.lanvalidator::regprocedure::text END),
               {_comment("pg_language", "l.oid")}
        FROM pg_language l WHERE {_USER_OID.format(oid="l.oid")}
          AND {_not_extension("pg_language", "l.oid")}
    """,
}

# Privileges, only with `[tool.deploy] privileges = true`: per object, the grants to roles
# other than its owner (owners are not part of the schema), `grantee:privilege[*]` with `*`
# for WITH GRANT OPTION, PUBLIC as `public`. A missing ACL means the type's default ACL.
_ACL = """(SELECT string_agg(e.entry, ',' ORDER BY e.entry) FROM (
              SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'public'
                ELSE (SELECT format('%%I', r.rolname) FROM pg_roles r WHERE r.oid = x.grantee)
                END || ':' || x.privilege_type
                || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS entry
              FROM aclexplode(COALESCE({acl}, acldefault('{kind}', {owner}))) x
              WHERE x.grantee <> {owner}) e)"""
_PRIVILEGE_QUERY = f"""
    SELECT 'table ' || format('%%I.%%I', n.nspname, c.relname),
           {_ACL.format(acl="c.relacl", kind="r", owner="c.relowner")},
           {_ACL.format(acl="NULL", kind="r", owner="c.relowner")}
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_NS}
    UNION ALL
    SELECT 'sequence ' || format('%%I.%%I', n.nspname, c.relname),
           {_ACL.format(acl="c.relacl", kind="s", owner="c.relowner")},
           {_ACL.format(acl="NULL", kind="s", owner="c.relowner")}
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND {_USER_NS}
    UNION ALL
    SELECT 'column ' || format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
           {_ACL.format(acl="a.attacl", kind="c", owner="c.relowner")}, NULL
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL AND {_USER_NS}
    UNION ALL
    SELECT 'schema ' || format('%%I', n.nspname),
           {_ACL.format(acl="n.nspacl", kind="n", owner="n.nspowner")},
           {_ACL.format(acl="NULL", kind="n", owner="n.nspowner")}
    FROM pg_namespace n WHERE {_USER_NS}
    UNION ALL
    SELECT 'function ' || format('%%I.%%I(%%s)', n.nspname, p.proname,
                                 pg_get_function_identity_arguments(p.oid)),
           {_ACL.format(acl="p.proacl", kind="f", owner="p.proowner")},
           {_ACL.format(acl="NULL", kind="f", owner="p.proowner")}
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER_NS}
    UNION ALL
    SELECT 'type ' || format('%%I.%%I', n.nspname, t.typname),
           {_ACL.format(acl="t.typacl", kind="T", owner="t.typowner")},
           {_ACL.format(acl="NULL", kind="T", owner="t.typowner")}
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    LEFT JOIN pg_class c ON c.oid = t.typrelid
    WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c')
      AND {_USER_NS}
"""


def privilege_entries(cur, exclusions: Exclusions) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """`<kind> <name>` -> (grants, the default grants of such a new object), for every object
    in a user schema; grants as `grantee:PRIVILEGE[*]`, comma-separated (maybe empty)."""
    params = {"system": list(_SYSTEM_SCHEMAS), "skip_schemas": list(exclusions.schemas)}
    cur.execute(_PRIVILEGE_QUERY, params)
    result = {}
    for key, grants, defaults in cur.fetchall():
        kind, _, name = key.partition(" ")
        if kind in ("table", "column", "sequence") and _excluded("relation", name, exclusions):
            continue
        result[key] = (grants or "", defaults or "")
    return result


# The `public` schema's grants as initdb leaves them (PostgreSQL 15+, and 14 and older).
_STOCK_PUBLIC_SCHEMA = {"public:USAGE", "public:CREATE,public:USAGE"}


def _privileges(cur, exclusions: Exclusions) -> Description:  # noqa: ANN001
    """`privilege <kind> <name>` entries, only for objects whose grants are not the defaults
    of their kind: turning `privileges` on keeps the fingerprint of a schema without GRANTs
    (and so its committed plans)."""
    return {
        f"privilege {key}": grants
        for key, (grants, defaults) in privilege_entries(cur, exclusions).items()
        if grants != defaults
        and not (key == "schema public" and grants in _STOCK_PUBLIC_SCHEMA)
    }


# Kinds whose row means nothing when every attribute is at its default: no key then.
_ONLY_WHEN_SET = {"column-option", "relation-option", "range-option"}

# Publications gained row filters, column lists and schemas in PostgreSQL 15.
_PUBLICATION_15 = {
    "publication_table_detail": "|| COALESCE(' WHERE ' || pg_get_expr(pr.prqual, pr.prrelid), '')"
    " || COALESCE(' COLUMNS ' || (SELECT string_agg(format('%%I', pa.attname), ';' ORDER BY"
    " pa.attname) FROM pg_attribute pa WHERE pa.attrelid = pr.prrelid"
    " AND pa.attnum = ANY(pr.prattrs)), '')",
    "publication_schemas": ", 'schemas=' || (SELECT string_agg(format('%%I', sn.nspname), ','"
    " ORDER BY 1) FROM pg_publication_namespace ps JOIN pg_namespace sn ON sn.oid = ps.pnnspid"
    " WHERE ps.pnpubid = p.oid)",
}
_PUBLICATION_14 = {"publication_table_detail": "", "publication_schemas": ""}


def _queries(server_version: int) -> dict[str, str]:
    """Every kind's query for this server version, in describe order."""
    queries = dict(_QUERIES)
    for kind, sql in _OPTIONAL_KINDS.items():
        if kind == "publication":
            parts = _PUBLICATION_15 if server_version >= 150000 else _PUBLICATION_14
            sql = sql.replace("{publication_table_detail}", parts["publication_table_detail"])
            sql = sql.replace("{publication_schemas}", parts["publication_schemas"])
        if kind in _ONLY_WHEN_SET:
            # Filtered on the server: most rows of these kinds (every column) are all-default.
            sql = (f"SELECT * FROM ({sql}) q(key, attributes, comment) "
                   "WHERE q.attributes <> '' OR q.comment IS NOT NULL")
        queries[kind] = sql
    return queries


# Most kinds are absent from most schemas (no operators, rules, policies, …), yet planning
# their queries cost a third of describe()'s statement at 1000 tables, and more on a fresh
# connection. A probe per kind says whether its catalog holds any object created after
# initdb (OID >= 16384, FirstNormalObjectId): a superset of what the kind's query can
# return, so a kind whose probe is false has no rows and its query is left out. Schemas,
# extensions and everything on tables are always read.
def _probe(catalog: str, condition: str = "oid >= 16384") -> str:
    return f"EXISTS (SELECT 1 FROM pg_catalog.{catalog} WHERE {condition})"


_PROBES: dict[str, str] = {
    "sequence": _probe("pg_sequence", "seqrelid >= 16384"),
    # Every table has a composite row type: only enums, domains, ranges and composite
    # types of their own (a pg_class row of kind 'c') count.
    "type": "(" + _probe("pg_type", "oid >= 16384 AND typtype IN ('e', 'd', 'r')") + " OR "
            + _probe("pg_class", "oid >= 16384 AND relkind = 'c'") + ")",
    "function": _probe("pg_proc"),
    "trigger": _probe("pg_trigger", "oid >= 16384 AND NOT tgisinternal"),
    "policy": _probe("pg_policy"),
    "rule": _probe("pg_rewrite", "oid >= 16384 AND rulename <> '_RETURN'"),
    "collation": _probe("pg_collation"),
    "statistics": _probe("pg_statistic_ext"),
    "event-trigger": _probe("pg_event_trigger"),
    "publication": _probe("pg_publication"),
    "operator": _probe("pg_operator"),
    "operator-class": _probe("pg_opclass"),
    "operator-family": _probe("pg_opfamily"),
    "text-search-configuration": _probe("pg_ts_config"),
    "text-search-dictionary": _probe("pg_ts_dict"),
    "text-search-parser": _probe("pg_ts_parser"),
    "text-search-template": _probe("pg_ts_template"),
    "aggregate": _probe("pg_aggregate", "aggfnoid >= 16384"),
    "range-option": _probe("pg_range", "rngtypid >= 16384"),
    # Every table has an array type (typtype 'b'): the probe skips them as the query does.
    "base-type": _probe("pg_type t", "t.oid >= 16384 AND t.typtype = 'b' AND NOT EXISTS ("
                        "SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)"),
    "cast": _probe("pg_cast"),
    "conversion": _probe("pg_conversion"),
    "foreign-data-wrapper": _probe("pg_foreign_data_wrapper"),
    "server": _probe("pg_foreign_server"),
    "transform": _probe("pg_transform"),
    "access-method": _probe("pg_am"),
    "language": _probe("pg_language"),
}


@functools.lru_cache(maxsize=64)
def _describe_query(server_version: int, absent: frozenset[str] = frozenset()) -> str:
    """All kinds but `absent` in one statement (one round trip): rows of (kind, key,
    attributes, comment)."""
    return "\nUNION ALL\n".join(
        f"(SELECT '{kind}'::text, * FROM ({sql}) k{number})"
        for number, (kind, sql) in enumerate(_queries(server_version).items())
        if kind not in absent
    )


# Object kinds whose key starts with a table name (schema.table.…), for exclusions.
_TABLE_SCOPED = {"relation", "column", "constraint", "index", "trigger", "policy", "rule",
                 "column-option", "relation-option"}


@dataclass(frozen=True)
class Exclusions:
    """What the fingerprint ignores: whole schemas, and tables (with everything on them)."""

    schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    # Privileges (GRANT/REVOKE) are left out unless `[tool.deploy] privileges = true`.
    privileges: bool = False

    def skips_table(self, schema: str, table: str) -> bool:
        """True when `schema.table` is excluded: an entry `schema.table`, or a bare `table`
        in `public` (where an unqualified name lands by default, like Alembic's table).

        A relation of that name in another schema is still fingerprinted: it is not the
        table the entry meant, and excluding it would hide drift.
        """
        return (schema, table) in self._qualified

    @functools.cached_property
    def _qualified(self) -> frozenset[tuple[str, str]]:
        return frozenset(qualify_exclusion(entry) for entry in self.tables)


def qualify_exclusion(entry: str) -> tuple[str, str]:
    """(schema, table) an `exclude` entry means: `schema.table`, or `public` for a bare name."""
    schema, dot, table = entry.strip().partition(".")
    return (schema, table) if dot else (DEFAULT_EXCLUDE_SCHEMA, schema)


# Where a bare `exclude` name is looked up: the first schema of PostgreSQL's default
# search_path ("$user", public) that a database normally has.
DEFAULT_EXCLUDE_SCHEMA = "public"


NOTHING_EXCLUDED = Exclusions()


def describe(conn, exclusions: Exclusions = NOTHING_EXCLUDED) -> Description:  # noqa: ANN001
    """Read the canonical description of the schema behind a DB-API connection.

    Works on psycopg2 connections and on SQLAlchemy connections (via their DB-API
    connection). Reads only. Inside a caller's open transaction it sees that transaction's
    changes and leaves it open (apply verifies a plan before COMMIT); otherwise it ends the
    read transaction it started.
    """
    raw = getattr(conn, "connection", conn)
    raw = getattr(raw, "dbapi_connection", raw)
    # A rollback here must only end a transaction this call opened: inside the caller's,
    # it would silently undo the caller's work.
    opened_here = not raw.autocommit and raw.info.transaction_status == TRANSACTION_STATUS_IDLE
    params = {"system": list(_SYSTEM_SCHEMAS), "skip_schemas": list(exclusions.schemas)}
    result: Description = {}
    with raw.cursor() as cur:
        # pg_get_viewdef & co. print names relative to search_path; pin it so the text is stable.
        # JIT off: the one statement's estimated cost passes jit_above_cost, and compiling it
        # took seconds (measured 2.3 s at 1000 tables) for a read that runs in a fraction.
        cur.execute("SELECT current_setting('search_path'), current_setting('jit'), "
                    "set_config('search_path', 'pg_catalog', false), "
                    "set_config('jit', 'off', false), " + ", ".join(_PROBES.values()))
        saved_path, saved_jit, _, _, *present = cur.fetchone()
        absent = frozenset(kind for kind, found in zip(_PROBES, present, strict=True)
                           if not found)
        cur.execute(_describe_query(raw.server_version, absent), params)
        for kind, key, attributes, comment in cur.fetchall():
            if key is None or _excluded(kind, key, exclusions):
                continue
            value = attributes or ""
            if kind == "relation" and raw.server_version >= 160000:
                value = _viewdef_like_pg15(value)
            if comment is not None:
                value += f" comment={json.dumps(comment)}"
            result[f"{kind} {key}"] = value.strip()
        if exclusions.privileges:
            result.update(_privileges(cur, exclusions))
        cur.execute("SELECT set_config('search_path', %s, false), set_config('jit', %s, false)",
                    (saved_path, saved_jit))
    if opened_here:
        raw.rollback()
    return result


def _viewdef_like_pg15(attributes: str) -> str:
    """16+ print single-relation view columns unqualified; describe them as 14/15 print them."""
    head, marker, definition = attributes.partition("definition=")
    if not marker:
        return attributes
    # Imported here: pglast costs ~40 ms to import, and only views need it (apply at head
    # on a schema without views never parses SQL).
    from deploy.viewdef import qualify_like_pg15

    return head + marker + qualify_like_pg15(definition)


def _excluded(kind: str, key: str, exclusions: Exclusions) -> bool:
    if not exclusions.tables or kind not in _TABLE_SCOPED:
        return False
    parts = split_key(key)
    return len(parts) >= 2 and exclusions.skips_table(*parts[:2])


def split_key(key: str) -> list[str]:
    """Split a `"schema"."table"…` object name back into plain names (quotes removed)."""
    if '"' not in key:
        # No quoted part (most keys): the same split, without a loop over every character
        # (describe() splits every key once when tables are excluded: ~0.1 s at 1000 tables).
        return key.partition("(")[0].split(".")
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(key):
        ch = key[i]
        if quoted:
            if ch == '"' and key[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            elif ch == '"':
                quoted = False
            else:
                current.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == ".":
            parts.append("".join(current))
            current = []
        elif ch == "(":
            break
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def fingerprint(description: Mapping[str, str]) -> str:
    """Return `sha256:<hex>` of a description; equal descriptions give equal fingerprints."""
    canonical = json.dumps(sorted(description.items()), ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Difference:
    """One object that differs between two descriptions."""

    key: str
    before: str | None
    after: str | None

    def __str__(self) -> str:
        if self.before is None:
            return f"+ {self.key}: {self.after}"
        if self.after is None:
            return f"- {self.key}: {self.before}"
        return f"~ {self.key}: {self.before}  =>  {self.after}"


def format_differences(differences: list[Difference], limit: int = 30) -> str:
    """One line per differing object, at most `limit` lines (then how many more)."""
    lines = [str(d) for d in differences[:limit]]
    if len(differences) > limit:
        lines.append(f"… and {len(differences) - limit} more")
    return "\n".join(lines)


def compare(before: Mapping[str, str], after: Mapping[str, str]) -> list[Difference]:
    """List the objects that are missing, extra or different, sorted by key."""
    keys: Iterable[str] = sorted(set(before) | set(after))
    return [
        Difference(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)
    ]
