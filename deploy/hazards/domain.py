"""ALTER DOMAIN: a domain's new check or NOT NULL is checked on every column of that type,
with a SHARE lock on each table that has one (measured on PostgreSQL 15; VALIDATE CONSTRAINT
too, unlike a table's): writes wait for the whole scan. NOT VALID, DROP and SET DEFAULT
lock no table. A domain this plan created is used by no old column."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import BACKWARD_INCOMPATIBLE, BLOCKS_WRITES, PlanState, Result


def classify_alter_domain(node: ast.AlterDomainStmt, plan: PlanState, out: Result) -> None:
    """Hazards of one ALTER DOMAIN on a domain that existed before the plan."""
    key = names.type_of_names(node.typeName, plan)
    if key in plan.types:
        return
    domain = f"domain {names.qname(key)}"
    if node.subtype == "C":
        c = node.def_
        if (isinstance(c, ast.Constraint) and c.contype == enums.ConstrType.CONSTR_CHECK
                and not c.skip_validation):
            name = f"{names.q(c.conname)} " if c.conname else ""
            out.add(f"add check {name}to {domain} without NOT VALID", BLOCKS_WRITES)
    elif node.subtype == "V":
        out.add(f"validate constraint {names.q(node.name or '')} of {domain}", BLOCKS_WRITES)
    elif node.subtype == "O":  # and the old code may still write NULLs
        out.add(f"alter {domain} set not null", BLOCKS_WRITES, BACKWARD_INCOMPATIBLE)
