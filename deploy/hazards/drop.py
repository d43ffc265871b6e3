"""DROP: what it loses (DELETES_DATA) and what the running code may still use
(BACKWARD_INCOMPATIBLE). Objects this plan created are dropped freely."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import (
    BACKWARD_INCOMPATIBLE,
    DELETES_DATA,
    PlanState,
    Result,
)

OT = enums.ObjectType

_RELATIONS = (OT.OBJECT_TABLE, OT.OBJECT_FOREIGN_TABLE, OT.OBJECT_VIEW, OT.OBJECT_MATVIEW,
              OT.OBJECT_SEQUENCE)


def classify_drop(node: ast.DropStmt, index: int, plan: PlanState, out: Result) -> None:
    """Hazards of one DROP statement (each of its objects)."""
    kind = node.removeType
    word = names.object_word(kind)
    cascade = names.cascade(node.behavior)
    for obj in node.objects or ():
        phrase = f"drop {word} {names.object_name(obj, plan)}{cascade}"
        if kind in _RELATIONS:
            key = names.relation_of_names(obj, plan)
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
            key = names.type_of_names(obj.names, plan)
            if key in plan.types:
                plan.types.discard(key)
                continue
            out.add(phrase, DELETES_DATA)
        elif kind == OT.OBJECT_SCHEMA:
            out.add(phrase, DELETES_DATA, BACKWARD_INCOMPATIBLE)
        elif kind in (OT.OBJECT_FUNCTION, OT.OBJECT_PROCEDURE, OT.OBJECT_ROUTINE):
            if cascade or not plan.recreated_after(index, function_key(obj, plan)):
                out.add(phrase, BACKWARD_INCOMPATIBLE)
            if cascade:  # takes dependent generated columns and defaults with it
                out.add(phrase, DELETES_DATA)
        elif kind == OT.OBJECT_EXTENSION:
            out.add(phrase, BACKWARD_INCOMPATIBLE)
            if cascade:
                out.add(phrase, DELETES_DATA)
        elif cascade:
            out.add(phrase, DELETES_DATA)


def function_key(obj: ast.ObjectWithArgs, plan: PlanState) -> tuple:
    """("function", schema, name, argument types or None for "any signature")."""
    schema, name = names.function_name(obj.objname, plan)
    if obj.args_unspecified:
        return ("function", schema, name, None)
    return ("function", schema, name, tuple(names.deparse(t) for t in obj.objargs or ()))
