"""RENAME, SET SCHEMA and enum value renames: the old code, still serving during the deploy,
looks for the old name (BACKWARD_INCOMPATIBLE). Renames of this plan's own objects are free."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import BACKWARD_INCOMPATIBLE, PlanState, Result

OT = enums.ObjectType

_RELATION_KINDS = (OT.OBJECT_TABLE, OT.OBJECT_VIEW, OT.OBJECT_MATVIEW, OT.OBJECT_SEQUENCE,
                   OT.OBJECT_FOREIGN_TABLE)


def classify_rename(node: ast.RenameStmt, plan: PlanState, out: Result) -> None:
    """Hazards of ALTER … RENAME (tables, columns, constraints, types, functions, …)."""
    kind = node.renameType
    to = names.q(node.newname)
    if node.relation is not None:
        table = names.relation(node.relation, plan)
        if table in plan.relations:
            if kind in _RELATION_KINDS:
                plan.relations.discard(table)
                plan.relations.add((table[0], node.newname))
            return
        if kind == OT.OBJECT_COLUMN:
            col = (*table, node.subname)
            if col in plan.columns:
                plan.columns[(*table, node.newname)] = plan.columns.pop(col)
                return
            out.add(f"rename column {names.qcol(col)} to {to}", BACKWARD_INCOMPATIBLE)
        elif node.subname:  # constraint, trigger, policy, rule: named on a table
            out.add(f"rename {names.object_word(kind)} "
                    f"{names.qcol((*table, node.subname))} to {to}", BACKWARD_INCOMPATIBLE)
        else:
            out.add(f"rename {names.object_word(kind)} {names.qname(table)} to {to}",
                    BACKWARD_INCOMPATIBLE)
        return
    if kind in (OT.OBJECT_TYPE, OT.OBJECT_DOMAIN):
        key = names.type_of_names(node.object, plan)
        if key in plan.types:
            plan.types.discard(key)
            plan.types.add((key[0], node.newname))
            return
    name = (names.object_name(node.object, plan) if node.object is not None
            else names.q(node.subname or ""))
    out.add(f"rename {names.object_word(kind)} {name} to {to}", BACKWARD_INCOMPATIBLE)


def classify_set_schema(node: ast.AlterObjectSchemaStmt, plan: PlanState, out: Result) -> None:
    """ALTER … SET SCHEMA moves the object away from the name the old code uses."""
    if node.relation is not None:
        key = names.relation(node.relation, plan)
        if key in plan.relations:
            plan.relations.discard(key)
            plan.relations.add((node.newschema, key[1]))
            return
        name = names.qname(key)
    else:
        name = names.object_name(node.object, plan)
    out.add(f"move {names.object_word(node.objectType)} {name} to schema "
            f"{names.q(node.newschema)}", BACKWARD_INCOMPATIBLE)


def classify_alter_enum(node: ast.AlterEnumStmt, plan: PlanState, out: Result) -> None:
    """RENAME VALUE breaks code that writes the old value; ADD VALUE is harmless."""
    key = names.type_of_names(node.typeName, plan)
    if node.oldVal is not None and key not in plan.types:
        out.add(f"rename value {names.lit(node.oldVal)} of type {names.qname(key)}"
                f" to {names.lit(node.newVal)}", BACKWARD_INCOMPATIBLE)
