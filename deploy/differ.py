"""The differ: SQL that takes one database's schema to another's.

migra does the heavy lifting behind this small adapter (so the engine could swap it).
The adapter adds what migra leaves out but the fingerprint covers: comments, and
sequence options. It also removes configured exclusions and the tool's own schema.
Whatever still differs after that, and has no SQL, is returned as `unexpressed`, so
`diff(A, B)` is empty exactly when the fingerprints are equal.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection

from deploy.fingerprint import (
    NOTHING_EXCLUDED,
    Difference,
    Exclusions,
    compare,
    describe,
    split_key,
)


@dataclass(frozen=True)
class Diff:
    """The statements that take `from` to `target`, and differences they cannot express."""

    statements: list[str] = field(default_factory=list)
    unexpressed: list[Difference] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the two schemas are the same (no statements, nothing unexpressed)."""
        return not self.statements and not self.unexpressed

    @property
    def sql(self) -> str:
        """The statements as one script, a blank line between statements."""
        return "".join(s + "\n\n" for s in self.statements).rstrip("\n") + (
            "\n" if self.statements else ""
        )


def diff(
    source: Connection, target: Connection, exclusions: Exclusions = NOTHING_EXCLUDED
) -> Diff:
    """Return what takes the schema behind `source` to the one behind `target`.

    Both are SQLAlchemy connections (psycopg2); neither is modified.
    """
    statements = migra_statements(source, target, exclusions)
    before = describe(source, exclusions)
    after = describe(target, exclusions)
    statements += sequence_statements(before, after, source, target)
    statements += comment_statements(source, target, exclusions)
    unexpressed = compare(before, after) if not statements else []
    return Diff(statements, unexpressed)


def migra_statements(source: Connection, target: Connection, exclusions: Exclusions) -> list[str]:
    """migra's statements (drops included; safety lives in hazards), exclusions removed."""
    with warnings.catch_warnings():
        # schemainspect imports pkg_resources, which warns on every import.
        warnings.simplefilter("ignore")
        from migra import Migration

    exclude_schema = exclusions.schemas[0] if exclusions.schemas else None
    migration = Migration(
        source, target, exclude_schema=exclude_schema, ignore_extension_versions=True
    )
    for inspector in (migration.changes.i_from, migration.changes.i_target):
        _drop_excluded(inspector, exclusions)
        _quote_enum_labels(inspector)
    migration.set_safety(False)
    migration.add_all_changes(privileges=False)
    result = []
    for statement in migration.statements:
        text = statement.strip()
        if text:
            result.append(text if text.endswith(";") else text + ";")
    _end_read_transactions(source, target)
    return result


def _drop_excluded(inspector: object, exclusions: Exclusions) -> None:
    """Forget excluded tables (and their indexes, constraints, triggers) inside an inspector."""
    extra_schemas = set(exclusions.schemas[1:])
    if not exclusions.tables and not extra_schemas:
        return
    for attribute in (
        "tables", "views", "materialized_views", "relations", "selectables", "indexes",
        "constraints", "sequences", "triggers", "rlspolicies", "functions", "enums",
        "domains", "types", "composite_types", "collations",
    ):
        objects = getattr(inspector, attribute, None)
        if not isinstance(objects, dict):
            continue
        for key in list(objects):
            obj = objects[key]
            schema = getattr(obj, "schema", None)
            table = getattr(obj, "table_name", None) or getattr(obj, "name", None)
            if schema in extra_schemas or (
                attribute in ("tables", "relations", "selectables", "indexes", "constraints",
                              "triggers", "rlspolicies", "sequences")
                and schema is not None and table is not None
                and exclusions.skips_table(schema, table)
            ):
                del objects[key]


def _quote_enum_labels(inspector: object) -> None:
    """Double the single quotes in enum labels: schemainspect pastes labels between quotes
    as they are (CREATE TYPE … AS ENUM, ADD VALUE), so a label like it's broke the SQL.
    Both sides get the same escaping, so comparing labels is unaffected."""
    for enum in (getattr(inspector, "enums", None) or {}).values():
        enum.elements = [label.replace("'", "''") for label in enum.elements]


def _end_read_transactions(*connections: Connection) -> None:
    for conn in connections:
        if conn.in_transaction():
            conn.rollback()


_SEQUENCE_OPTIONS = {
    "increment": "INCREMENT BY", "min": "MINVALUE", "max": "MAXVALUE",
    "start": "START WITH", "cache": "CACHE",
}


def sequence_statements(
    before: Mapping[str, str], after: Mapping[str, str], source: Connection, target: Connection
) -> list[str]:
    """ALTER SEQUENCE for sequences on both sides whose options differ (migra ignores them).

    Identity sequences are altered through their column, as PostgreSQL requires.
    """
    statements = []
    for key in sorted(set(before) & set(after)):
        if not key.startswith("sequence ") or before[key] == after[key]:
            continue
        old, new = _options(before[key]), _options(after[key])
        changes = [
            f"{_SEQUENCE_OPTIONS[name]} {new[name]}"
            for name in _SEQUENCE_OPTIONS
            if name in new and old.get(name) != new[name]
        ]
        if ("cycle" in old) != ("cycle" in new):
            changes.append("CYCLE" if "cycle" in new else "NO CYCLE")
        if not changes:
            continue
        name = key.removeprefix("sequence ")
        identity_of = new.get("identity-of")
        if identity_of and identity_of == old.get("identity-of"):
            schema_table, column = identity_of.rsplit(".", 1)
            statements.append(
                f"ALTER TABLE {schema_table} ALTER COLUMN {column} "
                + " ".join("SET " + c for c in changes) + ";"
            )
        else:
            statements.append(f"ALTER SEQUENCE {name} {' '.join(changes)};")
    return statements


def _options(attributes: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in attributes.split(" "):
        name, _, value = word.partition("=")
        options[name] = value
    return options


# For each commentable object: a stable key, the COMMENT ON target, and the comment.
_COMMENTS_QUERY = """
SELECT 'relation ' || format('%%I.%%I', n.nspname, c.relname),
       CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW '
            WHEN 'f' THEN 'FOREIGN TABLE ' WHEN 'S' THEN 'SEQUENCE ' WHEN 'i' THEN 'INDEX '
            WHEN 'I' THEN 'INDEX ' ELSE 'TABLE ' END || format('%%I.%%I', n.nspname, c.relname),
       d.description
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
     AND d.objsubid = 0
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'i', 'I') AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'column ' || format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
       'COLUMN ' || format('%%I.%%I.%%I', n.nspname, c.relname, a.attname), d.description
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
     AND d.objsubid = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
  AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'schema ' || format('%%I', n.nspname), 'SCHEMA ' || format('%%I', n.nspname), d.description
FROM pg_namespace n
LEFT JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass
WHERE n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'type ' || format('%%I.%%I', n.nspname, t.typname),
       CASE t.typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END
       || format('%%I.%%I', n.nspname, t.typname), d.description
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class c ON c.oid = t.typrelid
LEFT JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_type'::regclass
WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c')
  AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'function ' || format('%%I.%%I(%%s)', n.nspname, p.proname,
                             pg_get_function_identity_arguments(p.oid)),
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' WHEN 'a' THEN 'AGGREGATE ' ELSE 'FUNCTION ' END
       || format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       d.description
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'constraint '
       || format('%%I.%%I.%%I', n.nspname, COALESCE(c.relname, t.typname), con.conname),
       format('CONSTRAINT %%I ON ', con.conname)
       || CASE WHEN con.conrelid <> 0 THEN format('%%I.%%I', n.nspname, c.relname)
               ELSE format('DOMAIN %%I.%%I', n.nspname, t.typname) END,
       d.description
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
LEFT JOIN pg_class c ON c.oid = con.conrelid
LEFT JOIN pg_type t ON t.oid = con.contypid
LEFT JOIN pg_description d ON d.objoid = con.oid AND d.classoid = 'pg_constraint'::regclass
WHERE n.nspname <> ALL(%(skip)s) AND (con.conrelid <> 0 OR con.contypid <> 0)
UNION ALL
SELECT 'trigger ' || format('%%I.%%I.%%I', n.nspname, c.relname, tg.tgname),
       format('TRIGGER %%I ON %%I.%%I', tg.tgname, n.nspname, c.relname), d.description
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = tg.oid AND d.classoid = 'pg_trigger'::regclass
WHERE NOT tg.tgisinternal AND n.nspname <> ALL(%(skip)s)
UNION ALL
SELECT 'policy ' || format('%%I.%%I.%%I', n.nspname, c.relname, p.polname),
       format('POLICY %%I ON %%I.%%I', p.polname, n.nspname, c.relname), d.description
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass
WHERE n.nspname <> ALL(%(skip)s)
"""


def _comments(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, str | None]]:
    skip = ["pg_catalog", "information_schema", "pg_toast", *exclusions.schemas]
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(_COMMENTS_QUERY, {"skip": skip})
        rows = cur.fetchall()
    return {key: (target, comment) for key, target, comment in rows}


def comment_statements(source: Connection, target: Connection, exclusions: Exclusions) -> list[str]:
    """COMMENT ON statements that make `source`'s comments equal `target`'s (migra has none).

    Only objects that exist in `target` get a statement; those are created (if new) by the
    statements that come before these.
    """
    before = _comments(source, exclusions)
    after = _comments(target, exclusions)
    statements = []
    for key in sorted(after):
        object_sql, comment = after[key]
        old = before.get(key, (None, None))[1]
        if comment == old or (key not in before and comment is None):
            continue
        if _excluded_key(key, exclusions):
            continue
        statements.append(f"COMMENT ON {object_sql} IS {_literal(comment)};")
    _end_read_transactions(source, target)
    return statements


def _excluded_key(key: str, exclusions: Exclusions) -> bool:
    kind, _, name = key.partition(" ")
    parts = split_key(name)
    if kind in ("relation", "column", "constraint", "trigger", "policy") and len(parts) >= 2:
        return exclusions.skips_table(parts[0], parts[1])
    return False


def _literal(text: str | None) -> str:
    if text is None:
        return "NULL"
    return "'" + text.replace("'", "''") + "'"
