"""Index builds and table maintenance: what holds a strong lock for a whole build or scan
(BLOCKS_WRITES) or rewrites the table (TABLE_REWRITE), and materialized view refreshes."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.model import (
    BACKWARD_INCOMPATIBLE,
    BLOCKS_WRITES,
    TABLE_REWRITE,
    UNVERIFIED,
    PlanState,
    Result,
)
from deploy.statements import option_enabled


def classify_index(node: ast.IndexStmt, plan: PlanState, out: Result) -> None:
    """CREATE INDEX without CONCURRENTLY on a table that existed before the plan."""
    table = names.relation(node.relation, plan)
    if node.concurrent or table in plan.relations:
        return
    what = "create unique index" if node.unique else "create index"
    if node.idxname:
        name = names.qname((table[0], node.idxname))
    else:  # unnamed: the columns keep two such builds apart
        name = "(" + ", ".join(names.q(e.name) if e.name else "expression"
                               for e in node.indexParams or ()) + ")"
    out.add(f"{what} {name} on {names.qname(table)} without CONCURRENTLY", BLOCKS_WRITES)


def classify_reindex(node: ast.ReindexStmt, plan: PlanState, out: Result) -> None:
    """REINDEX without CONCURRENTLY blocks writes for the whole build."""
    if option_enabled(node.params, "concurrently"):
        return
    rk = enums.ReindexObjectType
    if node.kind == rk.REINDEX_OBJECT_INDEX:
        target = f"index {names.qname(names.relation(node.relation, plan))}"
    elif node.kind == rk.REINDEX_OBJECT_TABLE:
        table = names.relation(node.relation, plan)
        if table in plan.relations:
            return
        target = f"table {names.qname(table)}"
    elif node.kind == rk.REINDEX_OBJECT_SCHEMA:
        target = f"schema {names.q(node.name)}"
    else:
        target = "system" if node.kind == rk.REINDEX_OBJECT_SYSTEM else "database"
    out.add(f"reindex {target} without CONCURRENTLY", BLOCKS_WRITES)


def classify_vacuum(node: ast.VacuumStmt, plan: PlanState, out: Result) -> None:
    """VACUUM FULL rewrites every table it names (all of them when it names none)."""
    if not (node.is_vacuumcmd and option_enabled(node.options, "full")):
        return
    rels = [names.relation(v.relation, plan) for v in node.rels or () if v.relation is not None]
    if not rels:
        out.add("vacuum full", TABLE_REWRITE)
    for rel in rels:
        if rel not in plan.relations:
            out.add(f"vacuum full {names.qname(rel)}", TABLE_REWRITE)


def classify_cluster(node: ast.ClusterStmt, plan: PlanState, out: Result) -> None:
    """CLUSTER rewrites the table under ACCESS EXCLUSIVE."""
    if node.relation is None:
        out.add("cluster", TABLE_REWRITE)
        return
    table = names.relation(node.relation, plan)
    if table not in plan.relations:
        out.add(f"cluster {names.qname(table)}", TABLE_REWRITE)


def classify_refresh(node: ast.RefreshMatViewStmt, sql: str, plan: PlanState,
                     out: Result) -> None:
    """REFRESH MATERIALIZED VIEW runs the view's stored query (code this plan cannot read),
    and without CONCURRENTLY rewrites it under ACCESS EXCLUSIVE: its readers wait."""
    view = names.relation(node.relation, plan)
    target = f"refresh materialized view {names.qname(view)}"
    if node.skipData:  # empties it: readers get an error until the next refresh
        if view not in plan.relations:
            out.add(f"{target} with no data", BACKWARD_INCOMPATIBLE)
        return
    if not node.concurrent and view not in plan.relations:
        out.add(f"{target} without CONCURRENTLY", TABLE_REWRITE)
    out.add(f"{target} runs its query: {names.label(sql)}", UNVERIFIED)
    plan.search_path_changed()  # the query's functions may have set it
