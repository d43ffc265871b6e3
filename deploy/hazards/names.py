"""Names as the server resolves them, and as hazard texts spell them.

A plan runs with search_path pinned to `public` (deploy.session), so an unqualified name
means pg_temp first (relations and types the plan made temporary), then public. Once the
plan changed search_path, an unqualified name resolves to UNKNOWN_SCHEMA#n (n counts the
changes), which only matches what was created under that same path: nothing is exempted
on a guess.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from pglast import ast, enums, parser
from pglast.stream import RawStream

from deploy.hazards.model import TEMP_SCHEMA, UNKNOWN_SCHEMA, ColumnKey, Key, PlanState
from deploy.statements import DEFAULT_SCHEMA

OT = enums.ObjectType

_OBJECT_WORDS = {
    OT.OBJECT_MATVIEW: "materialized view",
    OT.OBJECT_TABCONSTRAINT: "constraint",
    OT.OBJECT_FDW: "foreign data wrapper",
    OT.OBJECT_FOREIGN_SERVER: "server",
}


def schema_of(name: str) -> str:
    """pg_temp_3 and pg_temp are the same schema for one session."""
    return TEMP_SCHEMA if name == TEMP_SCHEMA or name.startswith("pg_temp_") else name


def created_relation(rv: ast.RangeVar, plan: PlanState) -> Key:
    """Where CREATE puts a relation: TEMP goes to pg_temp, else the schema or search_path."""
    if rv.relpersistence == "t":
        return (TEMP_SCHEMA, rv.relname)
    if rv.schemaname:
        return (schema_of(rv.schemaname), rv.relname)
    return (_default_schema(plan), rv.relname)


def relation(rv: ast.RangeVar, plan: PlanState) -> Key:
    """The relation an existing-object reference names: pg_temp first, like the server."""
    if rv.schemaname:
        return (schema_of(rv.schemaname), rv.relname)
    return _unqualified(rv.relname, plan.relations, plan)


def relation_of_names(names: Sequence[ast.Node] | None, plan: PlanState) -> Key:
    """Like relation(), for a name list (DROP TABLE a.b)."""
    return _from_names(names, plan.relations, plan)


def type_of_names(names: Sequence[ast.Node] | None, plan: PlanState) -> Key:
    """A type name as the server resolves it (pg_temp is searched first for types too)."""
    return _from_names(names, plan.types, plan)


def created_type(names: Sequence[ast.Node] | None, plan: PlanState) -> Key:
    """Where CREATE TYPE/DOMAIN puts a type."""
    return _created(_parts(names), plan)


def function_name(names: Sequence[ast.Node] | None, plan: PlanState) -> Key:
    """A function name; pg_temp is never searched for functions, so an unqualified name
    means where CREATE FUNCTION would put it."""
    return _created(_parts(names), plan)


def _created(parts: list[str], plan: PlanState) -> Key:
    return _qualified(parts) or (_default_schema(plan), parts[-1] if parts else "")


def _qualified(parts: list[str]) -> Key | None:
    """(schema, name) of a qualified name list (a catalog part in front is ignored)."""
    return (schema_of(parts[-2]), parts[-1]) if len(parts) > 1 else None


def _default_schema(plan: PlanState) -> str:
    """Where an unqualified CREATE puts its object."""
    if not plan.search_path_changes:
        return DEFAULT_SCHEMA
    return f"{UNKNOWN_SCHEMA}#{plan.search_path_changes}"


def _from_names(names: Sequence[ast.Node] | None, known: set[Key], plan: PlanState) -> Key:
    parts = _parts(names)
    return _qualified(parts) or _unqualified(parts[-1] if parts else "", known, plan)


def _unqualified(name: str, known: set[Key], plan: PlanState) -> Key:
    if plan.search_path_changes:
        return (_default_schema(plan), name)
    if (TEMP_SCHEMA, name) in known:
        return (TEMP_SCHEMA, name)
    return (DEFAULT_SCHEMA, name)


def _parts(names: Sequence[ast.Node] | None) -> list[str]:
    return [n.sval for n in names or () if isinstance(n, ast.String)]


# --- text ------------------------------------------------------------------------------------


def q(ident: str) -> str:
    """A quoted identifier."""
    return '"' + ident.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A quoted string literal."""
    return "'" + value.replace("'", "''") + "'"


def qname(key: Key) -> str:
    """"schema"."name"."""
    return f"{q(key[0])}.{q(key[1])}"


def qcol(col: ColumnKey) -> str:
    """"schema"."table"."column"."""
    return f"{q(col[0])}.{q(col[1])}.{q(col[2])}"


def object_word(kind: enums.ObjectType) -> str:
    """OBJECT_FOREIGN_TABLE -> "foreign table"."""
    return _OBJECT_WORDS.get(kind) or kind.name.removeprefix("OBJECT_").lower().replace("_", " ")


def object_name(obj: object, plan: PlanState | None = None) -> str:
    """A DROP/RENAME target as text, schema-qualified the way the server resolves it."""
    state = plan or PlanState()
    if isinstance(obj, ast.TypeName):
        return qname(type_of_names(obj.names, state))
    if isinstance(obj, ast.ObjectWithArgs):
        name = qname(function_name(obj.objname, state))
        if obj.args_unspecified:
            return name
        return name + "(" + ", ".join(deparse(t) for t in obj.objargs or ()) + ")"
    if isinstance(obj, ast.String):
        return q(obj.sval)
    if isinstance(obj, tuple | list):
        parts = _parts(obj)
        if len(parts) == 1:
            return qname(relation_of_names(obj, state))
        return ".".join(q(p) for p in parts)
    return str(obj)


def cascade(behavior: enums.DropBehavior | None) -> str:
    """" cascade" when the statement says CASCADE."""
    return " cascade" if behavior == enums.DropBehavior.DROP_CASCADE else ""


def type_text(tn: ast.TypeName) -> str:
    """A type as SQL; user types schema-qualified and quoted like every other name here."""
    names = _parts(tn.names)
    if len(names) < 2 or names[0] == "pg_catalog" or tn.pct_type:
        return deparse(tn)
    mods = "(" + ", ".join(deparse(m) for m in tn.typmods) + ")" if tn.typmods else ""
    bounds = "".join(
        f"[{b.ival}]" if isinstance(b, ast.Integer) and b.ival >= 0 else "[]"
        for b in tn.arrayBounds or ()
    )
    return f"{qname((names[-2], names[-1]))}{mods}{bounds}"


def deparse(node: ast.Node) -> str:
    """The node printed back as SQL."""
    return RawStream()(node)


def clean(text: str) -> str:
    """One line: identifiers may hold control characters, a header line may not."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def summary(stmt_sql: str, limit: int = 80) -> str:
    """The statement without comments, on one line, cut to `limit` characters."""
    try:
        tokens = parser.scan(stmt_sql)
    except parser.ParseError:
        tokens = []
    text = stmt_sql
    for t in reversed(tokens):
        if t.name in ("SQL_COMMENT", "C_COMMENT"):
            text = text[: t.start] + " " + text[t.end + 1 :]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


@functools.lru_cache(maxsize=4096)  # a plan body is classified more than once per plan
def label(stmt_sql: str, limit: int = 80) -> str:
    """summary() plus, when it had to be cut, a short hash of the whole statement: two
    statements that start alike still need approvals of their own."""
    whole = summary(stmt_sql, limit=1 << 30)
    digest = hashlib.sha256(whole.encode("utf-8")).hexdigest()[:10]
    text = whole if len(whole) <= limit else f"{summary(stmt_sql, limit)} [sha256:{digest}]"
    # " -- " starts the reason on an approve line: a literal holding it could never match.
    return text.replace("--", "- -")
