"""Statements that change rows: DELETE, UPDATE, INSERT, MERGE and TRUNCATE, wherever they
sit in a statement (a DELETE inside a CTE deletes just the same).

Rows of a table this plan created are new: changing them loses nothing. On any other table,
DELETE/TRUNCATE, MERGE … THEN DELETE and UPDATE without WHERE are DELETES_DATA; every other
change of existing rows is UNVERIFIED (the classifier cannot tell a backfill from damage).
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import DELETES_DATA, UNVERIFIED, PlanState, Result
from deploy.statements import find

DML_NODES = (ast.DeleteStmt, ast.UpdateStmt, ast.InsertStmt, ast.MergeStmt)


def classify_dml(node: ast.Node, sql: str, plan: PlanState, out: Result) -> None:
    """Hazards of every data-changing node in the statement's tree."""
    for n in find(node, DML_NODES):
        if n.relation is None:
            continue
        table = names.relation(n.relation, plan)
        if table in plan.relations:
            continue
        target = names.qname(table)
        if isinstance(n, ast.DeleteStmt):
            out.add(f"delete from {target}", DELETES_DATA)
        elif isinstance(n, ast.UpdateStmt):
            targets = {(*table, t.name) for t in n.targetList or () if isinstance(t, ast.ResTarget)}
            if n.whereClause is None and not targets <= plan.columns.keys():
                out.add(f"update {target} without WHERE (every row)", DELETES_DATA)
            else:  # a backfill of columns this plan added still fires the table's triggers
                out.add(f"update {target}: {names.label(sql)}", UNVERIFIED)
        elif isinstance(n, ast.InsertStmt):
            out.add(f"insert into {target}: {names.label(sql)}", UNVERIFIED)
        else:
            if any(isinstance(w, ast.MergeWhenClause)
                   and w.commandType == enums.CmdType.CMD_DELETE
                   for w in n.mergeWhenClauses or ()):
                out.add(f"merge into {target} with DELETE", DELETES_DATA)
            out.add(f"merge into {target}: {names.label(sql)}", UNVERIFIED)


def classify_truncate(node: ast.TruncateStmt, plan: PlanState, out: Result) -> None:
    """TRUNCATE empties every table it names that existed before the plan."""
    for rv in node.relations or ():
        table = names.relation(rv, plan)
        if table not in plan.relations:
            out.add(f"truncate {names.qname(table)}{names.cascade(node.behavior)}", DELETES_DATA)
