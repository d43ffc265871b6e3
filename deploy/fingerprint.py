"""Schema fingerprints: a canonical description of a database's schema, and its sha256.

The description is a flat mapping `object key -> attributes`, read from the catalogs over
one connection. It leaves out OIDs, owners, database and host names, column order of
tables (migra cannot reorder columns), extension versions, extension-owned objects, the
tool's history schema and configured exclusions, so two databases built the same way
get the same fingerprint whatever server they live on.

It deliberately covers more than migra manages (comments, sequence and identity options,
FORCE ROW LEVEL SECURITY, domains, composite-type attribute order, partition index
attachment, constraint validity): a plan that misses one of those never lands on its
`to`, so the gap is caught instead of silently passed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from deploy.viewdef import qualify_like_pg15

Description = dict[str, str]

# Schemas that belong to the server itself.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# Filters shared by every query: objects in user schemas, not created by an extension.
_USER_NS = """
    n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
    AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%' AND n.nspname <> ALL(%(skip_schemas)s)
"""
_NOT_EXTENSION = """
    NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = %(class)s::regclass
                AND d.objid = {oid} AND d.deptype = 'e')
"""

_QUERIES: dict[str, str] = {
    "schema": f"""
        SELECT format('%%I', n.nspname), '', obj_description(n.oid, 'pg_namespace')
        FROM pg_namespace n
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="n.oid")}
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
               obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_NS}
          AND {_NOT_EXTENSION.format(oid="c.oid")}
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
               col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_USER_NS}
          AND {_NOT_EXTENSION.format(oid="c.oid").replace("%(class)s", "'pg_class'")}
          AND (c.relkind <> 'c' OR EXISTS (SELECT 1 FROM pg_type ct WHERE ct.typrelid = c.oid
               AND {_NOT_EXTENSION.format(oid="ct.oid").replace("%(class)s", "'pg_type'")}))
    """,
    "constraint": f"""
        SELECT CASE WHEN con.conrelid <> 0
                 THEN format('%%I.%%I.%%I', n.nspname, c.relname, con.conname)
                 ELSE format('%%I.%%I.%%I', n.nspname, ty.typname, con.conname) END,
               concat_ws(' ', pg_get_constraintdef(con.oid),
                 CASE WHEN NOT con.convalidated THEN 'not-validated' END),
               obj_description(con.oid, 'pg_constraint')
        FROM pg_constraint con
        JOIN pg_namespace n ON n.oid = con.connamespace
        LEFT JOIN pg_class c ON c.oid = con.conrelid
        LEFT JOIN pg_type ty ON ty.oid = con.contypid
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="con.oid")}
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
               obj_description(ic.oid, 'pg_class')
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class tc ON tc.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="tc.oid")}
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
               obj_description(c.oid, 'pg_class')
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="c.oid")}
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
               obj_description(t.oid, 'pg_type')
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c')
          AND {_USER_NS} AND {_NOT_EXTENSION.format(oid="t.oid")}
    """,
    "function": f"""
        SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,
                      pg_get_function_identity_arguments(p.oid)),
               CASE WHEN p.prokind = 'a' THEN 'aggregate returns '
                         || format_type(p.prorettype, NULL)
                    ELSE pg_get_functiondef(p.oid) END,
               obj_description(p.oid, 'pg_proc')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="p.oid")}
    """,
    "trigger": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, tg.tgname),
               concat_ws(' ', pg_get_triggerdef(tg.oid),
                 CASE WHEN tg.tgenabled <> 'O' THEN 'enabled=' || tg.tgenabled::text END),
               obj_description(tg.oid, 'pg_trigger')
        FROM pg_trigger tg
        JOIN pg_class c ON c.oid = tg.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT tg.tgisinternal AND {_USER_NS} AND {_NOT_EXTENSION.format(oid="tg.oid")}
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
               obj_description(p.oid, 'pg_policy')
        FROM pg_policy p
        JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS}
    """,
    "rule": f"""
        SELECT format('%%I.%%I.%%I', n.nspname, c.relname, r.rulename),
               pg_get_ruledef(r.oid), obj_description(r.oid, 'pg_rewrite')
        FROM pg_rewrite r
        JOIN pg_class c ON c.oid = r.ev_class
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND {_USER_NS} AND {_NOT_EXTENSION.format(oid="r.oid")}
    """,
    "collation": f"""
        SELECT format('%%I.%%I', n.nspname, co.collname),
               -- 15+ keep an ICU locale in another column (read by no major alike); 14 kept
               -- it in collcollate/collctype: leave those out for ICU so 14 matches 15.
               concat_ws(' ', 'provider=' || co.collprovider::text,
                         CASE WHEN co.collprovider <> 'i' THEN 'collate=' || co.collcollate END,
                         CASE WHEN co.collprovider <> 'i' THEN 'ctype=' || co.collctype END,
                         CASE WHEN NOT co.collisdeterministic
                         THEN 'nondeterministic' END),
               obj_description(co.oid, 'pg_collation')
        FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
        WHERE {_USER_NS} AND {_NOT_EXTENSION.format(oid="co.oid")}
    """,
}

# Catalog each query's objects live in, for the extension-membership filter.
_CATALOG = {
    "schema": "pg_namespace", "extension": "pg_extension", "relation": "pg_class",
    "column": "pg_class", "constraint": "pg_constraint", "index": "pg_class",
    "sequence": "pg_class", "type": "pg_type", "function": "pg_proc", "trigger": "pg_trigger",
    "policy": "pg_policy", "rule": "pg_rewrite", "collation": "pg_collation",
}

# Object kinds whose key starts with a table name (schema.table.…), for exclusions.
_TABLE_SCOPED = {"relation", "column", "constraint", "index", "trigger", "policy", "rule"}


@dataclass(frozen=True)
class Exclusions:
    """What the fingerprint ignores: whole schemas, and tables (with everything on them)."""

    schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()

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
    params_base = {"system": list(_SYSTEM_SCHEMAS), "skip_schemas": list(exclusions.schemas)}
    result: Description = {}
    with raw.cursor() as cur:
        # pg_get_viewdef & co. print names relative to search_path; pin it so the text is stable.
        cur.execute("SELECT current_setting('search_path')")
        saved_path = cur.fetchone()[0]
        cur.execute("SELECT set_config('search_path', 'pg_catalog', false)")
        for kind, query in _QUERIES.items():
            cur.execute(query, {**params_base, "class": _CATALOG[kind]})
            for key, attributes, comment in cur.fetchall():
                if key is None or _excluded(kind, key, exclusions):
                    continue
                value = attributes or ""
                if kind == "relation" and raw.server_version >= 160000:
                    value = _viewdef_like_pg15(value)
                if comment is not None:
                    value += f" comment={json.dumps(comment)}"
                result[f"{kind} {key}"] = value.strip()
        cur.execute("SELECT set_config('search_path', %s, false)", (saved_path,))
    if opened_here:
        raw.rollback()
    return result


def _viewdef_like_pg15(attributes: str) -> str:
    """16+ print single-relation view columns unqualified; describe them as 14/15 print them."""
    head, marker, definition = attributes.partition("definition=")
    return head + marker + qualify_like_pg15(definition) if marker else attributes


def _excluded(kind: str, key: str, exclusions: Exclusions) -> bool:
    if not exclusions.tables:
        return False
    parts = split_key(key)
    return kind in _TABLE_SCOPED and len(parts) >= 2 and exclusions.skips_table(*parts[:2])


def split_key(key: str) -> list[str]:
    """Split a `"schema"."table"…` object name back into plain names (quotes removed)."""
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
