"""Expand / contract: which statements of a generated plan wait for the next deploy.

Railway runs `invoke apply` while the old code still serves. A statement that would break
that old code (it drops something the old code reads or writes, makes a column NOT NULL
that the old code may leave empty, narrows a column's type) goes into the plan's contract
part, which `apply` runs in a later deploy, once no old code is left. Everything else
(creations, online index builds, constraints the old code satisfies, renames the new code
needs from its first second) stays in the expand part, which runs before the new code
starts. The decision is read from each statement's parse tree and its hazards
(deploy.hazards.classify), never from its text; the split is then proven by the planner
(deploy.proof.prove_parts): from -> expanded -> to, or the plan stays one part.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, enums

from deploy.fingerprint import Description, split_key
from deploy.hazards import BACKWARD_INCOMPATIBLE, DELETES_DATA, Hazard, classify
from deploy.hazards.alter_table import not_null_check_column
from deploy.plans import CONTRACT_MARKER
from deploy.statements import DEFAULT_SCHEMA, ParsedStatement, parse, qualified_name

AT = enums.AlterTableType
CT = enums.ConstrType
OT = enums.ObjectType

EXPAND_MARKER = "-- phase: expand"
# The comment line under CONTRACT_MARKER, for the reviewer.
CONTRACT_NOTE = "-- runs in the next deploy, after the new code is live"
# The name migra gives an enum it re-creates (values removed or reordered).
_OLD_ENUM_SUFFIX = "__old_version_to_be_dropped"

Table = tuple[str, str]
Column = tuple[str, str, str]


@dataclass(frozen=True)
class Split:
    """A generated plan body cut in two: statements (each ending in ';') per part, and for
    each contract statement the reason it waits (for the planner's notes)."""

    expand: list[str]
    contract: list[str]
    reasons: list[str]


def split(body: str, before: Description, after: Description) -> Split:
    """Decide, statement by statement, what of `body` must wait for the contract part.

    `before` and `after` describe the base and the models (to tell a widening type change,
    which old and new code both live with, from a narrowing one). Relative order is kept
    within each part.
    """
    parsed = parse(body)
    by_line: dict[int, list[Hazard]] = {}
    for hazard in classify(body, use_squawk=False):
        by_line.setdefault(hazard.line, []).append(hazard)
    old_types, new_types = _column_types(before), _column_types(after)
    recreated_enums = _recreated_enums(parsed)
    not_null = _contract_not_null(parsed, by_line)
    retyped = _contract_retyped(parsed, by_line, old_types, new_types, recreated_enums)
    expand: list[str] = []
    contract: list[str] = []
    reasons: list[str] = []
    for index, item in enumerate(parsed):
        hazards = by_line.get(item.statement.line, [])
        why = _contract_reason(item, index, parsed, hazards, retyped, recreated_enums,
                               not_null)
        text = item.statement.sql + ";"
        if why:
            contract.append(text)
            reasons.append(why)
        else:
            expand.append(text)
    return Split(expand, contract, reasons)


def render_body(expand: list[str], contract: list[str]) -> str:
    """The body of a two-part plan: the expand part, the marker with its note, the contract."""
    top = "\n\n".join(expand)
    bottom = "\n\n".join(contract)
    return (f"{EXPAND_MARKER}\n\n" + (top + "\n\n" if top else "")
            + f"{CONTRACT_MARKER}\n{CONTRACT_NOTE}\n\n{bottom}\n")


def contract_line(body: str) -> int | None:
    """1-based line of the contract marker in a plan body (or file), None without one."""
    for number, line in enumerate(body.split("\n"), start=1):
        if line.strip() == CONTRACT_MARKER:
            return number
    return None


# --- the decision ---------------------------------------------------------------------------


def _contract_reason(  # noqa: PLR0911 - one early answer per kind of statement
    item: ParsedStatement,
    index: int,
    parsed: list[ParsedStatement],
    hazards: list[Hazard],
    retyped: dict[Column, str],
    recreated_enums: set[Table],
    not_null: set[tuple[Table, str]],
) -> str | None:
    """Why this statement goes into the contract part, or None (it stays in expand)."""
    node = item.node
    kinds = {h.kind for h in hazards}
    if isinstance(node, ast.DropStmt):
        if node.removeType == OT.OBJECT_INDEX or not kinds & {BACKWARD_INCOMPATIBLE, DELETES_DATA}:
            return None  # an index, or the drop half of a drop-and-recreate (no hazard)
        if node.removeType == OT.OBJECT_TYPE and any(
                _type_key(obj) in recreated_enums for obj in node.objects or ()):
            return "drops the enum type the old code uses (values removed or reordered)"
        if any(_created_later(parsed, index, node.removeType, obj) for obj in node.objects or ()):
            return None  # dropped and created again by this plan: one step, keep it together
        return "drops something the old code may still use"
    if isinstance(node, ast.RenameStmt):
        # A rename stays in expand (the new code needs the new name) unless it is migra's
        # move-aside of an enum it re-creates.
        if node.renameType == OT.OBJECT_TYPE and node.newname.endswith(_OLD_ENUM_SUFFIX):
            return "re-creates an enum type (values removed or reordered)"
        return None
    if isinstance(node, ast.CreateEnumStmt):
        if qualified_name(node.typeName) in recreated_enums:
            return "re-creates an enum type (values removed or reordered)"
        return None
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return None
    table = (node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname)
    for cmd in node.cmds or ():
        if cmd.subtype == AT.AT_DropColumn and DELETES_DATA in kinds:
            return "drops a column the old code may still use"
        if cmd.subtype == AT.AT_SetNotNull and (table, cmd.name) in not_null:
            return "makes a column NOT NULL that the old code may leave empty"
        if cmd.subtype == AT.AT_AlterColumnType and BACKWARD_INCOMPATIBLE in kinds:
            why = retyped.get((*table, cmd.name))
            if why:
                return why
        if cmd.subtype == AT.AT_ColumnDefault and (*table, cmd.name) in retyped:
            # migra drops a default before a type change and sets it again after: the
            # three go together (the old default may not cast to the new type).
            return "re-sets the default of a column whose type change waits"
        if cmd.subtype == AT.AT_AddConstraint:
            name = cmd.def_.conname if _is_not_null_check(cmd) else None
        elif cmd.subtype in (AT.AT_ValidateConstraint, AT.AT_DropConstraint):
            name = cmd.name
        else:
            name = None
        if name and (table, f"check:{name}") in not_null:
            return "part of the online SET NOT NULL (its CHECK also refuses old NULLs)"
    return None


def _contract_not_null(
    parsed: list[ParsedStatement], by_line: dict[int, list[Hazard]]
) -> set[tuple[Table, str]]:
    """(table, column) of each SET NOT NULL on a pre-existing column, and (table,
    'check:<name>') of the temporary `CHECK (col IS NOT NULL)` of its online form: the whole
    sequence waits for the contract part (the NOT VALID check already refuses old code's
    NULL inserts). Tables that get a new primary key keep theirs in expand (the key needs
    the column NOT NULL when it is added)."""
    set_not_null: set[tuple[Table, str]] = set()
    checks: dict[tuple[Table, str], str] = {}  # (table, check name) -> column
    new_keys: set[Table] = set()
    for item in parsed:
        node = item.node
        if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
            continue
        table = (node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname)
        kinds = {h.kind for h in by_line.get(item.statement.line, [])}
        for cmd in node.cmds or ():
            if cmd.subtype == AT.AT_SetNotNull and BACKWARD_INCOMPATIBLE in kinds:
                set_not_null.add((table, cmd.name))
            elif cmd.subtype == AT.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
                if cmd.def_.contype == CT.CONSTR_PRIMARY:
                    new_keys.add(table)
                column = _is_not_null_check(cmd)
                if column:
                    checks[(table, cmd.def_.conname)] = column
    chosen = {(t, c) for t, c in set_not_null if t not in new_keys}
    chosen |= {(t, f"check:{name}") for (t, name), c in checks.items() if (t, c) in chosen}
    return chosen


def _contract_retyped(
    parsed: list[ParsedStatement],
    by_line: dict[int, list[Hazard]],
    old_types: dict[Column, str],
    new_types: dict[Column, str],
    recreated_enums: set[Table],
) -> dict[Column, str]:
    """Pre-existing columns whose type change waits for the contract part, with why: a
    narrowing change (old values, or the old code's, may not fit) or a re-created enum."""
    found: dict[Column, str] = {}
    for item in parsed:
        node = item.node
        kinds = {h.kind for h in by_line.get(item.statement.line, [])}
        if (not isinstance(node, ast.AlterTableStmt) or node.relation is None
                or BACKWARD_INCOMPATIBLE not in kinds):
            continue
        table = (node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname)
        for cmd in node.cmds or ():
            if cmd.subtype != AT.AT_AlterColumnType:
                continue
            column = (*table, cmd.name)
            if _type_name(cmd.def_.typeName) in recreated_enums:
                found[column] = ("re-types a column to a re-created enum (values removed or "
                                 "reordered)")
            elif not _widening(old_types.get(column), new_types.get(column)):
                found[column] = "narrows a column's type"
    return found


def _is_not_null_check(cmd: ast.AlterTableCmd) -> str | None:
    """The column of an `ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID`, else None."""
    c = cmd.def_
    if cmd.subtype != AT.AT_AddConstraint or not isinstance(c, ast.Constraint) or not c.conname:
        return None
    return not_null_check_column(c)


def _recreated_enums(parsed: list[ParsedStatement]) -> set[Table]:
    """Enum types migra re-creates: renamed to `<name>__old_version_to_be_dropped`, created
    again, columns re-typed, the old one dropped. The whole sequence removes or reorders
    values the old code may write, so all of it waits for the contract part."""
    found = set()
    for item in parsed:
        node = item.node
        if (isinstance(node, ast.RenameStmt) and node.renameType == OT.OBJECT_TYPE
                and node.newname.endswith(_OLD_ENUM_SUFFIX)):
            found.add(qualified_name(node.object))
    return found | {(s, n + _OLD_ENUM_SUFFIX) for s, n in found}


def _type_key(obj: object) -> Table:
    """(schema, name) of a DROP TYPE object (a TypeName) or a plain name list."""
    names = getattr(obj, "names", None) or obj
    return qualified_name(names)  # type: ignore[arg-type]


def _type_name(type_name: ast.TypeName | None) -> Table | None:
    if type_name is None:
        return None
    return qualified_name(type_name.names)


def _created_later(parsed: list[ParsedStatement], index: int, kind: object, obj: object) -> bool:
    """Whether a statement after `index` creates an object of the same name as `obj`."""
    if kind in (OT.OBJECT_FUNCTION, OT.OBJECT_PROCEDURE, OT.OBJECT_ROUTINE):
        wanted = qualified_name(getattr(obj, "objname", None))
    elif kind in (OT.OBJECT_TYPE, OT.OBJECT_DOMAIN):
        wanted = _type_key(obj)
    else:
        wanted = qualified_name(obj)  # type: ignore[arg-type]
    return any(_creates(later.node) == wanted for later in parsed[index + 1:])


def _creates(node: ast.Node) -> Table | None:
    """(schema, name) of what a CREATE statement creates, else None."""
    def rel(rv: ast.RangeVar) -> Table:
        return (rv.schemaname or DEFAULT_SCHEMA, rv.relname)

    if isinstance(node, ast.CreateStmt):
        return rel(node.relation)
    if isinstance(node, ast.ViewStmt):
        return rel(node.view)
    if isinstance(node, ast.CreateTableAsStmt):
        return rel(node.into.rel)
    if isinstance(node, ast.CreateSeqStmt):
        return rel(node.sequence)
    if isinstance(node, ast.CompositeTypeStmt):
        return rel(node.typevar)
    if isinstance(node, ast.CreateEnumStmt):
        return qualified_name(node.typeName)
    if isinstance(node, ast.CreateDomainStmt):
        return qualified_name(node.domainname)
    if isinstance(node, ast.CreateFunctionStmt):
        return qualified_name(node.funcname)
    return None


# --- type changes -----------------------------------------------------------------------------

_INTEGERS = ("smallint", "integer", "bigint")
# Attributes that follow a column's type in its description (deploy/fingerprint.py).
_AFTER_TYPE = (" not-null", " identity=", " generated=", " generated-virtual=", " default=",
               " collate=", " storage=", " position=")


def _column_types(description: Description) -> dict[Column, str]:
    """Column -> its type as format_type() prints it, from a schema description."""
    types: dict[Column, str] = {}
    for key, value in description.items():
        if not key.startswith("column ") or not value.startswith("type="):
            continue
        parts = split_key(key.removeprefix("column "))
        if len(parts) != 3:
            continue
        text = value.removeprefix("type=")
        cut = min((i for i in (text.find(a) for a in _AFTER_TYPE) if i >= 0), default=len(text))
        types[(parts[0], parts[1], parts[2])] = text[:cut]
    return types


def _widening(old: str | None, new: str | None) -> bool:
    """True when every value of `old` fits `new` unchanged, so old code keeps working."""
    if old is None or new is None:
        return False
    if old in _INTEGERS and new in _INTEGERS:
        return _INTEGERS.index(new) >= _INTEGERS.index(old)
    if old in _INTEGERS and new == "numeric":
        return True
    if (old, new) == ("real", "double precision"):
        return True
    old_base, old_len = _bounded(old)
    new_base, new_len = _bounded(new)
    if old_base in ("character varying", "text") and new_base in ("character varying", "text"):
        if new_len is None:
            return True
        return old_len is not None and new_len >= old_len
    if old_base == "numeric" and new_base == "numeric":
        if new_len is None:
            return True
        return old_len is not None and new_len >= old_len and _scale(old) == _scale(new)
    return False


def _bounded(type_text: str) -> tuple[str, int | None]:
    """('character varying', 20) from 'character varying(20)'; no bound -> None."""
    base, _, rest = type_text.partition("(")
    digits = rest.split(",")[0].rstrip(")")
    return base.strip(), int(digits) if digits.isdigit() else None


def _scale(type_text: str) -> str:
    return type_text.partition(",")[2].rstrip(")")
