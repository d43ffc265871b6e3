"""Classify plan statements into hazards a reviewer has to acknowledge.

Every statement is read from PostgreSQL's own parse tree (pglast). squawk, a migration
linter, runs as a second opinion; its findings are mapped onto the same four kinds and only
count where the parse-tree rules have no opinion of their own (see SQUAWK_RULES).

A hazard's text is what a reviewer copies into `-- approve: <text>`, so it only depends on
the statement itself and on what the plan created before it, never on line numbers.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pglast import ast, enums, parser
from pglast.stream import RawStream

from deploy.statements import (
    DEFAULT_SCHEMA,
    ParsedStatement,
    option_enabled,
    parse,
    qualified_name,
    walk,
)

log = logging.getLogger(__name__)

DELETES_DATA = "DELETES_DATA"
TABLE_REWRITE = "TABLE_REWRITE"
BLOCKS_WRITES = "BLOCKS_WRITES"
BACKWARD_INCOMPATIBLE = "BACKWARD_INCOMPATIBLE"
KINDS = (DELETES_DATA, TABLE_REWRITE, BLOCKS_WRITES, BACKWARD_INCOMPATIBLE)
_ALL_KINDS = frozenset(KINDS)


@dataclass(frozen=True)
class Hazard:
    kind: str  # one of KINDS
    text: str  # what follows "-- hazard: " in a plan header; starts with the kind
    line: int  # 1-based line of the statement in the classified text


@dataclass(frozen=True)
class Approval:
    text: str  # what follows "-- approve: "
    reason: str | None  # what follows " -- " on the approve line, if anything
    line: int


# squawk rule -> hazard kinds. A rule that is not listed is ignored: style advice
# (prefer-robust-stmts, prefer-text-field, prefer-bigint-*, prefer-identity,
# prefer-timestamp-tz, ban-char-field, require-enum-value-ordering, identifier-too-long,
# ban-create-domain-with-constraint), transaction shape the applier controls itself
# (transaction-nesting, ban-concurrent-index-creation-in-transaction,
# ban-uncommitted-transaction, require-timeout-settings, require-lock-timeout,
# require-statement-timeout: apply sets both timeouts), brief catalog-only locks whose
# queueing risk is apply's lock_timeout's job (require-concurrent-index-deletion,
# require-concurrent-partition-detach), and changes the old code survives during the
# deploy window (ban-drop-not-null, ban-drop-constraint, ban-drop-index, ban-drop-trigger,
# ban-add-enum-value, ban-replace-view-function, ban-set-default, ...).
SQUAWK_RULES: dict[str, tuple[str, ...]] = {
    # Lock held for a whole index build or table scan.
    "require-concurrent-index-creation": (BLOCKS_WRITES,),
    "require-concurrent-reindex": (BLOCKS_WRITES,),
    "constraint-missing-not-valid": (BLOCKS_WRITES,),
    "adding-foreign-key-constraint": (BLOCKS_WRITES,),
    "disallowed-unique-constraint": (BLOCKS_WRITES,),
    "adding-serial-primary-key-field": (BLOCKS_WRITES,),
    "adding-not-nullable-field": (BLOCKS_WRITES,),  # squawk 2.x: SET NOT NULL's scan
    "ban-alter-domain-with-add-constraint": (BLOCKS_WRITES,),  # validates every column using it
    # The table is rewritten under ACCESS EXCLUSIVE.
    "adding-field-with-default": (TABLE_REWRITE,),  # volatile default or stored generated
    "ban-alter-generated-expression": (TABLE_REWRITE,),
    "changing-column-type": (TABLE_REWRITE, BACKWARD_INCOMPATIBLE),
    # Data is gone.
    "ban-drop-column": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-table": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-schema": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-type": (DELETES_DATA,),
    "ban-drop-sequence": (DELETES_DATA,),
    "ban-drop-database": (DELETES_DATA,),
    "ban-truncate-cascade": (DELETES_DATA,),
    # The old application version, still serving, may use what changes.
    "adding-required-field": (BACKWARD_INCOMPATIBLE,),  # ADD COLUMN NOT NULL, no default
    "renaming-column": (BACKWARD_INCOMPATIBLE,),
    "renaming-table": (BACKWARD_INCOMPATIBLE,),
    "renaming-object": (BACKWARD_INCOMPATIBLE,),
    "ban-set-schema": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-view": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-function": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-domain": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-extension": (BACKWARD_INCOMPATIBLE,),
    "ban-revoke": (BACKWARD_INCOMPATIBLE,),
    "ban-alter-row-level-security": (BACKWARD_INCOMPATIBLE,),  # old role may see no rows
}

# Mapped rules squawk leaves off unless asked.
_SQUAWK_OPT_IN = ("ban-revoke", "ban-alter-row-level-security")

# Functions a column default may call without forcing a rewrite (stable or immutable).
# Anything else counts as volatile: that is PostgreSQL's own default for CREATE FUNCTION.
_NON_VOLATILE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_setting",
        "current_database",
        "current_schema",
        "lower",
        "upper",
        "length",
        "concat",
        "to_json",
        "to_jsonb",
        "json_build_object",
        "json_build_array",
        "jsonb_build_object",
        "jsonb_build_array",
        "make_interval",
        "make_date",
        "date_trunc",
        "timezone",
    }
)

_SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})

OT = enums.ObjectType
AT = enums.AlterTableType
CT = enums.ConstrType

_OBJECT_WORDS = {
    OT.OBJECT_MATVIEW: "materialized view",
    OT.OBJECT_TABCONSTRAINT: "constraint",
    OT.OBJECT_FDW: "foreign data wrapper",
    OT.OBJECT_FOREIGN_SERVER: "server",
}

# ALTER TABLE subcommands that neither rewrite, scan under a strong lock, lose data nor
# break old code: the parse tree's "no hazard" is final, squawk is not consulted.
_HARMLESS_SUBCOMMANDS = frozenset(
    {
        AT.AT_ColumnDefault,
        AT.AT_DropNotNull,
        AT.AT_DropConstraint,
        AT.AT_ValidateConstraint,
        AT.AT_AlterConstraint,
        AT.AT_SetStatistics,
        AT.AT_SetStorage,
        AT.AT_SetCompression,
        AT.AT_SetOptions,
        AT.AT_ResetOptions,
        AT.AT_SetRelOptions,
        AT.AT_ResetRelOptions,
        AT.AT_ReplaceRelOptions,
        AT.AT_AddIdentity,
        AT.AT_SetIdentity,
        AT.AT_DropExpression,
    }
)

# Statements whose rules below are complete: squawk findings on them are not added.
_DECIDED_NODES = (
    ast.DropStmt,
    ast.RenameStmt,
    ast.AlterObjectSchemaStmt,
    ast.AlterEnumStmt,
    ast.IndexStmt,
    ast.TruncateStmt,
    ast.DeleteStmt,
    ast.VacuumStmt,
    ast.ClusterStmt,
    ast.ReindexStmt,
    ast.CreateTableAsStmt,
    ast.CreateSeqStmt,
    ast.ViewStmt,
    ast.CreateFunctionStmt,
    ast.CreateEnumStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.CreateTrigStmt,
    ast.CommentStmt,
)

Key = tuple[str, str]  # (schema, name)
ColumnKey = tuple[str, str, str]  # (schema, table, column)


@dataclass
class _Plan:
    """What the plan has created so far: statements on these objects carry no hazards."""

    relations: set[Key] = field(default_factory=set)
    types: set[Key] = field(default_factory=set)
    # Columns added to pre-existing tables, with their declared type when known.
    columns: dict[ColumnKey, ast.TypeName | None] = field(default_factory=dict)
    # Views and functions (re)created by each statement, to spot drop-then-recreate.
    creates: list[set[tuple]] = field(default_factory=list)

    def recreated_after(self, index: int, key: tuple) -> bool:
        return any(key in created for created in self.creates[index + 1 :])


@dataclass
class _Result:
    found: list[tuple[str, str]] = field(default_factory=list)  # (kind, verb phrase)
    decided: set[str] = field(default_factory=set)  # kinds squawk may not add

    def add(self, phrase: str, *kinds: str) -> None:
        for kind in kinds:
            self.found.append((kind, phrase))


def classify(sql: str, *, use_squawk: bool = True) -> list[Hazard]:
    """Hazards of a plan (body or whole file), ordered by line then kind, each text once.
    Raises StatementError when the SQL does not parse; squawk is skipped when not installed."""
    parsed = parse(sql)
    plan = _Plan(creates=[_creations(p.node) for p in parsed])
    results = []
    for index, p in enumerate(parsed):
        result = _Result()
        _classify_node(p.node, index, plan, result)
        results.append(result)

    hazards = [
        Hazard(kind, _clean(f"{kind} {phrase}"), p.statement.line)
        for p, result in zip(parsed, results, strict=True)
        for kind, phrase in result.found
    ]
    if use_squawk and parsed:
        hazards.extend(_squawk_hazards(sql, parsed, results))

    hazards.sort(key=lambda h: (h.line, KINDS.index(h.kind), h.text))
    seen: set[str] = set()
    unique = []
    for hazard in hazards:
        if hazard.text not in seen:
            seen.add(hazard.text)
            unique.append(hazard)
    return unique


def unapproved(hazards: Sequence[Hazard], approvals: Iterable[Approval]) -> list[Hazard]:
    """The hazards no approval matches (texts compared after stripping surrounding blanks)."""
    approved = {a.text.strip() for a in approvals}
    return [h for h in hazards if h.text.strip() not in approved]


# --- parse-tree rules ---------------------------------------------------------------------


def _classify_node(node: ast.Node, index: int, plan: _Plan, out: _Result) -> None:
    if isinstance(node, _DECIDED_NODES):
        out.decided |= _ALL_KINDS
    # IF NOT EXISTS may have met an old object: only a plain CREATE proves it is new.
    if isinstance(node, ast.CreateStmt):
        if node.partbound is None:  # PARTITION OF locks (and may scan) an existing parent
            out.decided |= _ALL_KINDS
        if not node.if_not_exists:
            plan.relations.add(_rel(node.relation))
    elif isinstance(node, ast.CreateTableAsStmt):
        if not node.if_not_exists:
            plan.relations.add(_rel(node.into.rel))
    elif isinstance(node, ast.CreateSeqStmt):
        if not node.if_not_exists:
            plan.relations.add(_rel(node.sequence))
    elif isinstance(node, ast.ViewStmt):
        if not node.replace:  # OR REPLACE may be replacing a view old code uses
            plan.relations.add(_rel(node.view))
    elif isinstance(node, ast.CreateEnumStmt):
        plan.types.add(qualified_name(node.typeName))
    elif isinstance(node, ast.CompositeTypeStmt):
        plan.types.add(_rel(node.typevar))
    elif isinstance(node, ast.CreateDomainStmt):
        plan.types.add(qualified_name(node.domainname))
    elif isinstance(node, ast.DropStmt):
        _drop(node, index, plan, out)
    elif isinstance(node, ast.AlterTableStmt):
        _alter_table(node, plan, out)
    elif isinstance(node, ast.RenameStmt):
        _rename(node, plan, out)
    elif isinstance(node, ast.AlterObjectSchemaStmt):
        _set_schema(node, plan, out)
    elif isinstance(node, ast.AlterEnumStmt):
        if node.oldVal is not None and qualified_name(node.typeName) not in plan.types:
            out.add(
                f"rename value {_lit(node.oldVal)} of type {_qname(qualified_name(node.typeName))}"
                f" to {_lit(node.newVal)}",
                BACKWARD_INCOMPATIBLE,
            )
    elif isinstance(node, ast.IndexStmt):
        table = _rel(node.relation)
        if not node.concurrent and table not in plan.relations:
            what = "create unique index" if node.unique else "create index"
            if node.idxname:
                name = _qname((table[0], node.idxname))
            else:  # unnamed: the columns keep two such builds apart
                name = "(" + ", ".join(_q(e.name) if e.name else "expression"
                                       for e in node.indexParams or ()) + ")"
            out.add(f"{what} {name} on {_qname(table)} without CONCURRENTLY", BLOCKS_WRITES)
    elif isinstance(node, ast.TruncateStmt):
        for rv in node.relations or ():
            if _rel(rv) not in plan.relations:
                out.add(f"truncate {_qname(_rel(rv))}{_cascade(node.behavior)}", DELETES_DATA)
    elif isinstance(node, ast.DeleteStmt):
        if _rel(node.relation) not in plan.relations:
            out.add(f"delete from {_qname(_rel(node.relation))}", DELETES_DATA)
    elif isinstance(node, ast.VacuumStmt):
        if node.is_vacuumcmd and option_enabled(node.options, "full"):
            rels = [_rel(v.relation) for v in node.rels or () if v.relation is not None]
            if not rels:
                out.add("vacuum full", TABLE_REWRITE)
            for rel in rels:
                if rel not in plan.relations:
                    out.add(f"vacuum full {_qname(rel)}", TABLE_REWRITE)
    elif isinstance(node, ast.ClusterStmt):
        if node.relation is None:
            out.add("cluster", TABLE_REWRITE)
        elif _rel(node.relation) not in plan.relations:
            out.add(f"cluster {_qname(_rel(node.relation))}", TABLE_REWRITE)
    elif isinstance(node, ast.ReindexStmt):
        _reindex(node, plan, out)


def _drop(node: ast.DropStmt, index: int, plan: _Plan, out: _Result) -> None:
    kind = node.removeType
    word = _object_word(kind)
    cascade = _cascade(node.behavior)
    for obj in node.objects or ():
        name = _object_name(obj)
        phrase = f"drop {word} {name}{cascade}"
        if kind in (OT.OBJECT_TABLE, OT.OBJECT_FOREIGN_TABLE, OT.OBJECT_VIEW,
                    OT.OBJECT_MATVIEW, OT.OBJECT_SEQUENCE):
            key = qualified_name(obj)
            if key in plan.relations:  # created by this plan: no old data, no old user
                plan.relations.discard(key)
                continue
            # migra drops and re-creates a view when it cannot replace it; inside one
            # transaction the old code never sees it missing.
            recreated = not cascade and plan.recreated_after(index, ("relation", *key))
            if kind in (OT.OBJECT_TABLE, OT.OBJECT_FOREIGN_TABLE):
                out.add(phrase, DELETES_DATA, BACKWARD_INCOMPATIBLE)
            elif kind == OT.OBJECT_MATVIEW:
                out.add(phrase, DELETES_DATA)
                if not recreated:
                    out.add(phrase, BACKWARD_INCOMPATIBLE)
            elif kind == OT.OBJECT_VIEW:
                if not recreated:
                    out.add(phrase, BACKWARD_INCOMPATIBLE)
                if cascade:
                    out.add(phrase, DELETES_DATA)
            else:
                out.add(phrase, DELETES_DATA)
        elif kind in (OT.OBJECT_TYPE, OT.OBJECT_DOMAIN):
            key = qualified_name(obj.names)
            if key in plan.types:
                plan.types.discard(key)
                continue
            out.add(phrase, DELETES_DATA)
        elif kind == OT.OBJECT_SCHEMA:
            out.add(phrase, DELETES_DATA, BACKWARD_INCOMPATIBLE)
        elif kind in (OT.OBJECT_FUNCTION, OT.OBJECT_PROCEDURE, OT.OBJECT_ROUTINE):
            if cascade or not plan.recreated_after(index, _function_key(obj)):
                out.add(phrase, BACKWARD_INCOMPATIBLE)
            if cascade:  # takes dependent generated columns and defaults with it
                out.add(phrase, DELETES_DATA)
        elif kind == OT.OBJECT_EXTENSION:
            out.add(phrase, BACKWARD_INCOMPATIBLE)
            if cascade:
                out.add(phrase, DELETES_DATA)
        elif cascade:
            out.add(phrase, DELETES_DATA)


def _alter_table(node: ast.AlterTableStmt, plan: _Plan, out: _Result) -> None:
    table = _rel(node.relation)
    word = _object_word(node.objtype)
    new_table = table in plan.relations
    understood = True
    for cmd in node.cmds or ():
        sub = cmd.subtype
        col = (*table, cmd.name) if cmd.name else None
        if new_table:
            continue  # everything goes on a table the old code does not know and is empty
        if sub == AT.AT_AddColumn:
            _add_column(cmd.def_, table, plan, out)
        elif sub == AT.AT_DropColumn:
            if col in plan.columns:  # added by this plan: nothing old is lost
                del plan.columns[col]
            else:
                out.add(f"drop column {_qcol(col)}{_cascade(cmd.behavior)}",
                        DELETES_DATA, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_AlterColumnType:
            new_type = cmd.def_.typeName
            phrase = f"alter column {_qcol(col)} type {_type_text(new_type)}"
            if col in plan.columns:
                if not _is_binary_widening(plan.columns[col], cmd.def_, cmd.name):
                    out.add(phrase, TABLE_REWRITE)
                plan.columns[col] = new_type
            else:  # the old type is not in the statement: assume the worst
                out.add(phrase, TABLE_REWRITE, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_SetNotNull:
            # A column added in this transaction already holds ACCESS EXCLUSIVE on the table.
            if col not in plan.columns:
                out.add(f"alter column {_qcol(col)} set not null",
                        BLOCKS_WRITES, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_AddConstraint:
            _add_constraint(cmd.def_, table, out)
        elif sub == AT.AT_SetTableSpace:
            out.add(f"alter {word} {_qname(table)} set tablespace {_q(cmd.name)}",
                    TABLE_REWRITE)
        elif sub in (AT.AT_SetLogged, AT.AT_SetUnLogged):
            state = "logged" if sub == AT.AT_SetLogged else "unlogged"
            out.add(f"alter {word} {_qname(table)} set {state}", TABLE_REWRITE)
        elif sub == AT.AT_SetAccessMethod:
            out.add(f"alter {word} {_qname(table)} set access method {_q(cmd.name or '')}",
                    TABLE_REWRITE)
        elif sub == AT.AT_SetExpression:
            out.add(f"alter column {_qcol(col)} set expression", TABLE_REWRITE)
        elif sub not in _HARMLESS_SUBCOMMANDS:
            understood = False
    if understood:
        out.decided |= _ALL_KINDS
    else:
        out.decided |= {kind for kind, _ in out.found}


def _add_column(cd: ast.ColumnDef, table: Key, plan: _Plan, out: _Result) -> None:
    col = (*table, cd.colname)
    plan.columns[col] = cd.typeName
    qcol = _qcol(col)
    constraints = list(cd.constraints or ())
    types = {c.contype for c in constraints}
    default = cd.raw_default or next(
        (c.raw_expr for c in constraints if c.contype == CT.CONSTR_DEFAULT), None
    )
    type_name = (cd.typeName.names[-1].sval if cd.typeName else "").lower()

    if type_name in _SERIAL_TYPES:
        out.add(f"add column {qcol} {type_name}", TABLE_REWRITE)
    if default is not None and _volatile_calls(default):
        out.add(f"add column {qcol} with volatile default {_deparse(default)}", TABLE_REWRITE)
    if CT.CONSTR_IDENTITY in types:
        out.add(f"add column {qcol} generated as identity", TABLE_REWRITE)
    for c in constraints:
        if c.contype == CT.CONSTR_GENERATED and c.generated_kind != "v":
            out.add(f"add column {qcol} generated always as stored", TABLE_REWRITE)

    filled = (default is not None or type_name in _SERIAL_TYPES
              or types & {CT.CONSTR_IDENTITY, CT.CONSTR_GENERATED})
    not_null = cd.is_not_null or types & {CT.CONSTR_NOTNULL, CT.CONSTR_PRIMARY}
    if not_null and not filled:
        out.add(f"add column {qcol} not null without default", BACKWARD_INCOMPATIBLE)

    inline = {CT.CONSTR_PRIMARY: "primary key", CT.CONSTR_UNIQUE: "unique",
              CT.CONSTR_FOREIGN: "foreign key", CT.CONSTR_CHECK: "check",
              CT.CONSTR_EXCLUSION: "exclusion"}
    for c in constraints:
        if c.contype in inline and not (c.contype in (CT.CONSTR_FOREIGN, CT.CONSTR_CHECK)
                                        and c.skip_validation):
            out.add(f"add column {qcol} with {inline[c.contype]} constraint", BLOCKS_WRITES)


def _add_constraint(c: ast.Constraint, table: Key, out: _Result) -> None:
    on = _qname(table)
    if c.conname:
        name = _q(c.conname)
    else:
        cols = c.fk_attrs or c.keys or ()
        name = "(" + ", ".join(_q(k.sval) for k in cols) + ")" if cols else ""
    label = f"{name} on {on}" if name else f"on {on}"
    if c.contype in (CT.CONSTR_FOREIGN, CT.CONSTR_CHECK) and not c.skip_validation:
        word = "foreign key" if c.contype == CT.CONSTR_FOREIGN else "check"
        out.add(f"add {word} {label} without NOT VALID", BLOCKS_WRITES)
    elif c.contype in (CT.CONSTR_UNIQUE, CT.CONSTR_PRIMARY) and not c.indexname:
        word = "unique" if c.contype == CT.CONSTR_UNIQUE else "primary key"
        out.add(f"add {word} {label} without USING INDEX", BLOCKS_WRITES)
    elif c.contype == CT.CONSTR_EXCLUSION:
        out.add(f"add exclusion {label}", BLOCKS_WRITES)


def _rename(node: ast.RenameStmt, plan: _Plan, out: _Result) -> None:
    kind = node.renameType
    to = _q(node.newname)
    if node.relation is not None:
        table = _rel(node.relation)
        if table in plan.relations:
            if kind in (OT.OBJECT_TABLE, OT.OBJECT_VIEW, OT.OBJECT_MATVIEW,
                        OT.OBJECT_SEQUENCE, OT.OBJECT_FOREIGN_TABLE):
                plan.relations.discard(table)
                plan.relations.add((table[0], node.newname))
            return
        if kind == OT.OBJECT_COLUMN:
            col = (*table, node.subname)
            if col in plan.columns:
                plan.columns[(*table, node.newname)] = plan.columns.pop(col)
                return
            out.add(f"rename column {_qcol(col)} to {to}", BACKWARD_INCOMPATIBLE)
        elif node.subname:  # constraint, trigger, policy, rule: named on a table
            out.add(f"rename {_object_word(kind)} {_qcol((*table, node.subname))} to {to}",
                    BACKWARD_INCOMPATIBLE)
        else:
            out.add(f"rename {_object_word(kind)} {_qname(table)} to {to}",
                    BACKWARD_INCOMPATIBLE)
        return
    if kind in (OT.OBJECT_TYPE, OT.OBJECT_DOMAIN):
        key = qualified_name(node.object)
        if key in plan.types:
            plan.types.discard(key)
            plan.types.add((key[0], node.newname))
            return
    name = _object_name(node.object) if node.object is not None else _q(node.subname or "")
    out.add(f"rename {_object_word(kind)} {name} to {to}", BACKWARD_INCOMPATIBLE)


def _set_schema(node: ast.AlterObjectSchemaStmt, plan: _Plan, out: _Result) -> None:
    if node.relation is not None:
        key = _rel(node.relation)
        if key in plan.relations:
            plan.relations.discard(key)
            plan.relations.add((node.newschema, key[1]))
            return
        name = _qname(key)
    else:
        name = _object_name(node.object)
    out.add(f"move {_object_word(node.objectType)} {name} to schema {_q(node.newschema)}",
            BACKWARD_INCOMPATIBLE)


def _reindex(node: ast.ReindexStmt, plan: _Plan, out: _Result) -> None:
    if option_enabled(node.params, "concurrently"):
        return
    rk = enums.ReindexObjectType
    if node.kind == rk.REINDEX_OBJECT_INDEX:
        target = f"index {_qname(_rel(node.relation))}"
    elif node.kind == rk.REINDEX_OBJECT_TABLE:
        if _rel(node.relation) in plan.relations:
            return
        target = f"table {_qname(_rel(node.relation))}"
    elif node.kind == rk.REINDEX_OBJECT_SCHEMA:
        target = f"schema {_q(node.name)}"
    else:
        target = "system" if node.kind == rk.REINDEX_OBJECT_SYSTEM else "database"
    out.add(f"reindex {target} without CONCURRENTLY", BLOCKS_WRITES)


def _creations(node: ast.Node) -> set[tuple]:
    """Keys of the views and functions a statement (re)creates."""
    if isinstance(node, ast.ViewStmt):
        return {("relation", *_rel(node.view))}
    if isinstance(node, ast.CreateTableAsStmt) and node.objtype == OT.OBJECT_MATVIEW:
        return {("relation", *_rel(node.into.rel))}
    if isinstance(node, ast.CreateFunctionStmt):
        schema, name = qualified_name(node.funcname)
        inputs = tuple(
            _deparse(p.argType)
            for p in node.parameters or ()
            if p.mode not in (enums.FunctionParameterMode.FUNC_PARAM_OUT,
                              enums.FunctionParameterMode.FUNC_PARAM_TABLE)
        )
        # A bare `DROP FUNCTION f` (no argument list) matches any signature.
        return {("function", schema, name, inputs), ("function", schema, name, None)}
    return set()


def _function_key(obj: ast.ObjectWithArgs) -> tuple:
    schema, name = qualified_name(obj.objname)
    if obj.args_unspecified:
        return ("function", schema, name, None)
    return ("function", schema, name, tuple(_deparse(t) for t in obj.objargs or ()))


def _is_binary_widening(old: ast.TypeName | None, new_def: ast.ColumnDef, column: str) -> bool:
    """varchar(n) -> varchar(m >= n), varchar or text: PostgreSQL relabels, no rewrite."""
    if old is None or old.arrayBounds or new_def.typeName.arrayBounds:
        return False
    new = new_def.typeName
    using = new_def.raw_default
    # migra spells every type change `USING col::newtype`: the same as no USING at all.
    if using is not None and not (
        isinstance(using, ast.TypeCast)
        and isinstance(using.arg, ast.ColumnRef)
        and [f.sval for f in using.arg.fields if isinstance(f, ast.String)] == [column]
        and _deparse(using.typeName) == _deparse(new)
    ):
        return False
    old_base, old_len = _string_type(old)
    new_base, new_len = _string_type(new)
    if old_base not in ("varchar", "text") or new_base not in ("varchar", "text"):
        return False
    if new_base == "text" or new_len is None:
        return True
    return old_base == "varchar" and old_len is not None and new_len >= old_len


def _string_type(tn: ast.TypeName) -> tuple[str, int | None]:
    base = tn.names[-1].sval.lower()
    mods = [m.val.ival for m in tn.typmods or ()
            if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer)]
    return base, (mods[0] if mods else None)


def _volatile_calls(expr: ast.Node) -> list[str]:
    calls = []
    for n in walk(expr):
        if isinstance(n, ast.FuncCall):
            parts = [s.sval for s in n.funcname if isinstance(s, ast.String)]
            name = parts[-1].lower()
            user_schema = len(parts) > 1 and parts[0] != "pg_catalog"
            if user_schema or name not in _NON_VOLATILE_FUNCTIONS:
                calls.append(name)
    return calls


# --- squawk ----------------------------------------------------------------------------------


@functools.cache
def _squawk_path() -> str | None:
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("squawk")


def run_squawk(sql: str) -> list[dict] | None:
    """squawk's JSON findings for the SQL, or None when squawk is not installed or fails."""
    path = _squawk_path()
    if path is None:
        return None
    command = [path, "--reporter", "json", "--stdin-filepath", "plan.sql"]
    done = _run(command + ["--include", ",".join(_SQUAWK_OPT_IN)], sql)
    if done is not None and done.returncode == 2 and b"invalid rule name" in done.stderr:
        done = _run(command, sql)  # an older squawk 2.x without those rules
    if done is None:
        return None
    try:
        findings = json.loads(done.stdout.decode("utf-8") or "[]")
    except ValueError:
        findings = None
    if done.returncode not in (0, 1) or not isinstance(findings, list):
        log.warning("squawk skipped: exit %s: %s", done.returncode,
                    done.stderr.decode("utf-8", "replace").strip()[:200])
        return None
    return findings


def _run(command: list[str], sql: str) -> subprocess.CompletedProcess[bytes] | None:
    # An empty working directory keeps a stray .squawk.toml from changing the hazards.
    with tempfile.TemporaryDirectory(prefix="squawk-") as cwd:
        try:
            return subprocess.run(
                command,
                input=sql.encode("utf-8"),
                capture_output=True,
                cwd=cwd,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("squawk skipped: %s", exc)
            return None


def _squawk_hazards(
    sql: str, parsed: list[ParsedStatement], results: list[_Result]
) -> list[Hazard]:
    findings = run_squawk(sql)
    if not findings:
        return []
    line_starts = [0]
    for i, ch in enumerate(sql):
        if ch == "\n":
            line_starts.append(i + 1)
    starts = [p.start for p in parsed]
    hazards = []
    for finding in findings:
        kinds = SQUAWK_RULES.get(str(finding.get("rule_name")))
        if not kinds:
            continue
        offset = _squawk_offset(sql, line_starts, finding.get("line"), finding.get("column"))
        if offset is None:
            continue
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        p, result = parsed[index], results[index]
        have = result.decided | {kind for kind, _ in result.found}
        for kind in kinds:
            if kind not in have:
                text = f"{kind} {finding['rule_name']} on {_summary(p.statement.sql)}"
                hazards.append(Hazard(kind, _clean(text), p.statement.line))
    return hazards


def _squawk_offset(sql: str, line_starts: list[int], line: object, column: object) -> int | None:
    # squawk counts lines from 0 and columns in UTF-8 bytes.
    if not isinstance(line, int) or not 0 <= line < len(line_starts):
        return None
    start = line_starts[line]
    end = line_starts[line + 1] if line + 1 < len(line_starts) else len(sql)
    byte_col = column if isinstance(column, int) and column > 0 else 0
    prefix = sql[start:end].encode("utf-8")[:byte_col].decode("utf-8", "ignore")
    return start + len(prefix)


def _summary(stmt_sql: str, limit: int = 80) -> str:
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


# --- text helpers ----------------------------------------------------------------------------


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _qname(key: Key) -> str:
    return f"{_q(key[0])}.{_q(key[1])}"


def _qcol(col: ColumnKey) -> str:
    return f"{_q(col[0])}.{_q(col[1])}.{_q(col[2])}"


def _rel(rv: ast.RangeVar) -> Key:
    return (rv.schemaname or DEFAULT_SCHEMA, rv.relname)


def _object_word(kind: enums.ObjectType) -> str:
    return _OBJECT_WORDS.get(kind) or kind.name.removeprefix("OBJECT_").lower().replace("_", " ")


def _object_name(obj: object) -> str:
    if isinstance(obj, ast.TypeName):
        return _qname(qualified_name(obj.names))
    if isinstance(obj, ast.ObjectWithArgs):
        name = _qname(qualified_name(obj.objname))
        if obj.args_unspecified:
            return name
        return name + "(" + ", ".join(_deparse(t) for t in obj.objargs or ()) + ")"
    if isinstance(obj, ast.String):
        return _q(obj.sval)
    if isinstance(obj, tuple | list):
        parts = [s.sval for s in obj if isinstance(s, ast.String)]
        if len(parts) == 1:
            parts.insert(0, DEFAULT_SCHEMA)
        return ".".join(_q(p) for p in parts)
    return str(obj)


def _cascade(behavior: enums.DropBehavior | None) -> str:
    return " cascade" if behavior == enums.DropBehavior.DROP_CASCADE else ""


def _type_text(tn: ast.TypeName) -> str:
    """A type as SQL; user types schema-qualified and quoted like every other name here."""
    names = [n.sval for n in tn.names if isinstance(n, ast.String)]
    if len(names) < 2 or names[0] == "pg_catalog" or tn.pct_type:
        return _deparse(tn)
    mods = "(" + ", ".join(_deparse(m) for m in tn.typmods) + ")" if tn.typmods else ""
    bounds = "".join(
        f"[{b.ival}]" if isinstance(b, ast.Integer) and b.ival >= 0 else "[]"
        for b in tn.arrayBounds or ()
    )
    return f"{_qname((names[-2], names[-1]))}{mods}{bounds}"


def _deparse(node: ast.Node) -> str:
    return RawStream()(node)


def _clean(text: str) -> str:
    # Identifiers may hold control characters; a header line must stay one line.
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
