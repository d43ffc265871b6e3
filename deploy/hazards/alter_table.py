"""ALTER TABLE: rewrites, long scans under strong locks, lost columns, and changes the old
code cannot live with. Everything goes on a table this plan created (it is new and empty)."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import (
    ALL_KINDS,
    BACKWARD_INCOMPATIBLE,
    BLOCKS_WRITES,
    DELETES_DATA,
    TABLE_REWRITE,
    UNVERIFIED,
    ColumnKey,
    Key,
    PlanState,
    Result,
)
from deploy.statements import find

AT = enums.AlterTableType
CT = enums.ConstrType

# Functions a column default may call without forcing a rewrite (stable or immutable).
# Anything else counts as volatile: that is PostgreSQL's own default for CREATE FUNCTION.
NON_VOLATILE_FUNCTIONS = frozenset(
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

# Why moving a sequence that existed before the plan is a hazard.
REPEATS = "it may hand out values already used"
# Why GENERATED ALWAYS on a column that existed before the plan is a hazard.
REFUSED = "explicit values are refused"

_SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})

# Subcommands that neither rewrite, scan under a strong lock, lose data nor break old code:
# the parse tree's "no hazard" is final, squawk is not consulted.
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


# Subcommands with no parse-tree rule that squawk judges (row-level security, ownership,
# replica identity, …). Any other subcommand without a rule is UNVERIFIED (default-deny):
# enabling or disabling triggers and rules, ATTACH/DETACH PARTITION, INHERIT…
_SQUAWK_JUDGED = frozenset(
    {
        AT.AT_EnableRowSecurity,
        AT.AT_DisableRowSecurity,
        AT.AT_ForceRowSecurity,
        AT.AT_NoForceRowSecurity,
        AT.AT_ChangeOwner,
        AT.AT_ReplicaIdentity,
        AT.AT_ClusterOn,
        AT.AT_DropCluster,
        AT.AT_GenericOptions,
        AT.AT_AlterColumnGenericOptions,
    }
)


def classify_alter_table(
    node: ast.AlterTableStmt, sql: str, index: int, plan: PlanState, out: Result
) -> None:
    """Hazards of each subcommand of one ALTER TABLE (the `index`-th statement of the plan)."""
    table = names.relation(node.relation, plan)
    word = names.object_word(node.objtype)
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
                out.add(f"drop column {names.qcol(col)}{names.cascade(cmd.behavior)}",
                        DELETES_DATA, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_AlterColumnType:
            new_type = cmd.def_.typeName
            phrase = f"alter column {names.qcol(col)} type {names.type_text(new_type)}"
            if col in plan.columns:
                if not _is_binary_widening(plan.columns[col], cmd.def_, cmd.name):
                    out.add(phrase, TABLE_REWRITE)
                plan.columns[col] = new_type
            else:  # the old type is not in the statement: assume the worst
                out.add(phrase, TABLE_REWRITE, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_SetNotNull:
            # A column added in this transaction already holds ACCESS EXCLUSIVE on the table.
            if col in plan.validated_not_null:
                # The online form: a validated CHECK (col IS NOT NULL) spares the scan, so
                # writes wait only for the brief lock; old code may still write NULLs.
                out.add(f"alter column {names.qcol(col)} set not null", BACKWARD_INCOMPATIBLE)
            elif col not in plan.columns:
                out.add(f"alter column {names.qcol(col)} set not null",
                        BLOCKS_WRITES, BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_ValidateConstraint:
            column = plan.not_null_checks.get((table, cmd.name or ""))
            if column is not None:
                plan.validated_not_null.add((*table, column))
        elif sub == AT.AT_AddConstraint:
            _add_constraint(cmd.def_, table, plan, out)
        elif sub == AT.AT_SetTableSpace:
            out.add(f"alter {word} {names.qname(table)} set tablespace {names.q(cmd.name)}",
                    TABLE_REWRITE)
        elif sub == AT.AT_SetLogged:
            out.add(f"alter {word} {names.qname(table)} set logged", TABLE_REWRITE)
        elif sub == AT.AT_SetUnLogged:
            # From then on a crash empties the table, and replicas do not have its rows.
            out.add(f"alter {word} {names.qname(table)} set unlogged",
                    TABLE_REWRITE, DELETES_DATA)
        elif sub == AT.AT_DropIdentity:
            # Old code that inserts without the column now fails; the sequence goes with
            # its position, so a later identity or default would start again from 1.
            out.add(f"drop identity of {names.qcol(col)} (its sequence and position go)",
                    BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_SetIdentity:
            if _sets_always(cmd.def_):
                out.add(f"set identity of {names.qcol(col)} generated always ({REFUSED})",
                        BACKWARD_INCOMPATIBLE)
            if option_given(cmd.def_, "restart"):
                out.add(f"restart identity of {names.qcol(col)} ({REPEATS})",
                        BACKWARD_INCOMPATIBLE)
        elif sub == AT.AT_AddIdentity:
            _add_identity(col, cmd.def_, index, plan, out)
        elif sub == AT.AT_SetAccessMethod:
            out.add(f"alter {word} {names.qname(table)} set access method "
                    f"{names.q(cmd.name or '')}", TABLE_REWRITE)
        elif sub == AT.AT_SetExpression:
            out.add(f"alter column {names.qcol(col)} set expression", TABLE_REWRITE)
        elif sub in _SQUAWK_JUDGED:
            understood = False
        elif sub not in _HARMLESS_SUBCOMMANDS:
            what = sub.name.removeprefix("AT_")
            out.add(f"alter {word} {names.qname(table)} {what}: {names.label(sql)}", UNVERIFIED)
    if understood:
        out.decided |= ALL_KINDS
    else:
        out.decided |= {kind for kind, _ in out.found}


def _add_column(cd: ast.ColumnDef, table: Key, plan: PlanState, out: Result) -> None:
    col = (*table, cd.colname)
    plan.columns[col] = cd.typeName
    qcol = names.qcol(col)
    constraints = list(cd.constraints or ())
    types = {c.contype for c in constraints}
    default = cd.raw_default or next(
        (c.raw_expr for c in constraints if c.contype == CT.CONSTR_DEFAULT), None
    )
    type_name = (cd.typeName.names[-1].sval if cd.typeName else "").lower()

    if type_name in _SERIAL_TYPES:
        out.add(f"add column {qcol} {type_name}", TABLE_REWRITE)
    if default is not None and volatile_calls(default):
        out.add(f"add column {qcol} with volatile default {names.deparse(default)}",
                TABLE_REWRITE)
    if CT.CONSTR_IDENTITY in types:
        out.add(f"add column {qcol} generated as identity", TABLE_REWRITE)
        for c in constraints:
            plan.new_sequences(identity_sequences(c, plan))
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


def _add_identity(col: ColumnKey, c: ast.Constraint, index: int, plan: PlanState,
                  out: Result) -> None:
    """An identity on a column that holds rows: its new sequence starts at START WITH (1)
    unless the plan sets it before anything commits (the identity repair's setval); ALWAYS
    refuses old inserts that write the column."""
    sequences = identity_sequences(c, plan)
    if c.generated_when == "a":
        out.add(f"add identity to {names.qcol(col)} generated always ({REFUSED})",
                BACKWARD_INCOMPATIBLE)
    if not any(plan.later_in_transaction(index, ("setval", *key)) for key in sequences):
        out.add(f"add identity to {names.qcol(col)} ({REPEATS})", BACKWARD_INCOMPATIBLE)
    plan.new_sequences(sequences)


def _sets_always(options: object) -> bool:
    """ALTER COLUMN … SET GENERATED ALWAYS (the parser stores the letter's code)."""
    return any(isinstance(o, ast.DefElem) and o.defname == "generated"
               and isinstance(o.arg, ast.Integer) and o.arg.ival == ord("a")
               for o in options or ())


def option_given(options: object, name: str) -> bool:
    """Whether a DefElem list (ALTER SEQUENCE, ALTER COLUMN … SET …) holds option `name`."""
    return any(isinstance(o, ast.DefElem) and o.defname == name for o in options or ())


def identity_sequences(c: ast.Node | None, plan: PlanState) -> set[Key]:
    """The sequence an identity constraint creates, when it names it (SEQUENCE NAME): only
    then is its name certain (an implicit name may get a suffix on a clash)."""
    if not isinstance(c, ast.Constraint) or c.contype != CT.CONSTR_IDENTITY:
        return set()
    found = set()
    for o in c.options or ():
        if isinstance(o, ast.DefElem) and o.defname == "sequence_name":
            parts = [s.sval for s in o.arg if isinstance(s, ast.String)]
            rv = ast.RangeVar(schemaname=parts[-2] if len(parts) > 1 else None,
                              relname=parts[-1], relpersistence="p", inh=True)
            found.add(names.created_relation(rv, plan))
    return found


def _add_constraint(c: ast.Constraint, table: Key, plan: PlanState, out: Result) -> None:
    on = names.qname(table)
    column = not_null_check_column(c)
    if column is not None and c.conname:
        plan.not_null_checks[(table, c.conname)] = column
    if c.conname:
        name = names.q(c.conname)
    else:
        cols = c.fk_attrs or c.keys or ()
        name = "(" + ", ".join(names.q(k.sval) for k in cols) + ")" if cols else ""
    label = f"{name} on {on}" if name else f"on {on}"
    if c.contype in (CT.CONSTR_FOREIGN, CT.CONSTR_CHECK) and not c.skip_validation:
        word = "foreign key" if c.contype == CT.CONSTR_FOREIGN else "check"
        out.add(f"add {word} {label} without NOT VALID", BLOCKS_WRITES)
    elif c.contype in (CT.CONSTR_UNIQUE, CT.CONSTR_PRIMARY) and not c.indexname:
        word = "unique" if c.contype == CT.CONSTR_UNIQUE else "primary key"
        out.add(f"add {word} {label} without USING INDEX", BLOCKS_WRITES)
    elif c.contype == CT.CONSTR_EXCLUSION:
        out.add(f"add exclusion {label}", BLOCKS_WRITES)


def not_null_check_column(c: ast.Constraint) -> str | None:
    """The column of a `CHECK (col IS NOT NULL) NOT VALID` constraint, else None."""
    expr = c.raw_expr
    if (c.contype != CT.CONSTR_CHECK or not c.skip_validation
            or not isinstance(expr, ast.NullTest)
            or expr.nulltesttype != enums.NullTestType.IS_NOT_NULL
            or not isinstance(expr.arg, ast.ColumnRef)):
        return None
    fields = expr.arg.fields or ()
    if len(fields) != 1 or not isinstance(fields[0], ast.String):
        return None
    return fields[0].sval


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
        and names.deparse(using.typeName) == names.deparse(new)
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


def volatile_calls(expr: ast.Node) -> list[str]:
    """Names of the functions an expression calls that may be volatile."""
    calls = []
    for n in find(expr, ast.FuncCall):
        parts = [s.sval for s in n.funcname if isinstance(s, ast.String)]
        name = parts[-1].lower()
        user_schema = len(parts) > 1 and parts[0] != "pg_catalog"
        if user_schema or name not in NON_VOLATILE_FUNCTIONS:
            calls.append(name)
    return calls
