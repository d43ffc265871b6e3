"""Default-deny: what the classifier cannot prove harmless is an UNVERIFIED hazard.

A statement kind is judged by the rule modules only if it is in MODELLED; any other kind
(COPY, LOCK, RULE, EXPLAIN ANALYZE, event triggers, CREATE OPERATOR/CAST/AGGREGATE — they
make later expressions call functions without a visible call, …) needs an approval as it
stands.
Code that runs on the server is never read: DO blocks, CALL, CREATE TABLE AS / SELECT INTO,
and function calls in queries — except a short list of built-ins that only compute values —
are UNVERIFIED, and so is any statement that calls a function this plan (re)defined.
After code ran (or search_path changed), unqualified names are no longer resolved.
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.alter_table import NON_VOLATILE_FUNCTIONS
from deploy.hazards.dml import DML_NODES
from deploy.hazards.model import UNVERIFIED, PlanState, Result
from deploy.hazards.sequence import sets_own_sequence
from deploy.statements import DEFAULT_SCHEMA, find

# Statement kinds whose effect the rule modules model (DDL migra generates, and maintenance).
MODELLED = (
    ast.CreateStmt,
    ast.AlterTableStmt,
    ast.DropStmt,
    ast.RenameStmt,
    ast.AlterObjectSchemaStmt,
    ast.IndexStmt,
    ast.ReindexStmt,
    ast.ClusterStmt,
    ast.VacuumStmt,
    ast.TruncateStmt,
    ast.CreateEnumStmt,
    ast.AlterEnumStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.AlterDomainStmt,
    ast.CreateSeqStmt,
    ast.AlterSeqStmt,
    ast.ViewStmt,
    ast.CreateFunctionStmt,
    ast.AlterFunctionStmt,
    ast.CreateTrigStmt,
    ast.CommentStmt,
    ast.CreateExtensionStmt,
    ast.CreateSchemaStmt,
    ast.GrantStmt,
    ast.GrantRoleStmt,
    ast.AlterDefaultPrivilegesStmt,
    ast.AlterOwnerStmt,
    ast.CreatePolicyStmt,
    ast.AlterPolicyStmt,
    ast.CreateStatsStmt,
    ast.RefreshMatViewStmt,
    # A label changes no row and no name; like GRANT it only matters to a security provider.
    ast.SecLabelStmt,
    # Session settings and savepoints: the runner refuses the ones that would matter
    # (deploy.session); what it lets through changes no data.
    ast.VariableSetStmt,
    ast.TransactionStmt,
)

# Statements that define code or defaults without running them: calls inside are not calls
# (a new table is empty, so its defaults and checks run on no row yet).
_DEFINITIONS = (ast.CreateFunctionStmt, ast.ViewStmt, ast.CreateTrigStmt, ast.CreatePolicyStmt,
                ast.AlterPolicyStmt, ast.CommentStmt, ast.RuleStmt, ast.CreateStmt,
                ast.CreateDomainStmt, ast.CompositeTypeStmt)

# Built-ins a query may call: they compute a value and touch nothing.
SAFE_FUNCTIONS = NON_VOLATILE_FUNCTIONS - {"current_setting"} | {
    "count", "sum", "min", "max", "avg", "array_agg", "string_agg", "bool_and", "bool_or",
    "json_agg", "jsonb_agg", "coalesce", "greatest", "least", "abs", "round", "trim",
    "substring", "replace", "format", "to_char", "extract", "date_part",
}


def classify_unverified(node: ast.Node, sql: str, plan: PlanState, out: Result,
                        calls: list[ast.FuncCall] | None = None) -> None:
    """UNVERIFIED hazards of one statement, and what it does to name resolution. `calls`:
    the statement's FuncCall nodes in walk order, when the caller collected them already."""
    if isinstance(node, ast.DoStmt):
        out.add(f"DO block: {names.label(sql)}", UNVERIFIED)
        plan.search_path_changed()
        return
    if isinstance(node, ast.CallStmt):
        name = names.qname(names.function_name(node.funccall.funcname, plan))
        out.add(f"call {name}: {names.label(sql)}", UNVERIFIED)
        plan.search_path_changed()
        return
    if isinstance(node, ast.CreateTableAsStmt):
        _create_table_as(node, sql, plan, out)
    elif isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            target = names.qname(names.created_relation(node.intoClause.rel, plan))
            out.add(f"select into {target}: {names.label(sql)}", UNVERIFIED)
        elif _reads_plan_views(node, plan):
            out.add(f"query of a view this plan created: {names.label(sql)}", UNVERIFIED)
    elif isinstance(node, ast.VariableSetStmt):
        if node.kind == enums.VariableSetKind.VAR_RESET_ALL or node.name == "search_path":
            plan.search_path_changed()
    elif isinstance(node, ast.CreateSchemaStmt):
        if node.schemaElts:  # CREATE SCHEMA … CREATE TABLE …: not read element by element
            out.add(f"create schema with elements: {names.label(sql)}", UNVERIFIED)
    elif not isinstance(node, MODELLED + DML_NODES):
        word = type(node).__name__.removesuffix("Stmt")
        out.add(f"{word} statement: {names.label(sql)}", UNVERIFIED)
        plan.search_path_changed()
    if not isinstance(node, _DEFINITIONS):
        _calls(node, sql, plan, out, find(node, ast.FuncCall) if calls is None else calls)


def _create_table_as(node: ast.CreateTableAsStmt, sql: str, plan: PlanState,
                     out: Result) -> None:
    target = names.qname(names.created_relation(node.into.rel, plan))
    if node.objtype == enums.ObjectType.OBJECT_MATVIEW:
        # Reading tables changes nothing; functions and this plan's views may.
        if not node.into.skipData and _reads_plan_views(node.query, plan):
            out.add(f"materialized view {target} runs a view this plan created: "
                    f"{names.label(sql)}", UNVERIFIED)
        return
    out.add(f"create table as {target}: {names.label(sql)}", UNVERIFIED)


def _reads_plan_views(node: ast.Node, plan: PlanState) -> bool:
    return any(names.relation(n, plan) in plan.views for n in find(node, ast.RangeVar))


def _calls(node: ast.Node, sql: str, plan: PlanState, out: Result,
           calls: list[ast.FuncCall]) -> None:
    """Function calls the classifier cannot vouch for (a query's calls run now; a DDL
    expression's only matter when the function is this plan's own)."""
    query = isinstance(node, (ast.SelectStmt, ast.CreateTableAsStmt, *DML_NODES))
    seen: set[str] = set()
    for n in calls:
        parts = [s.sval for s in n.funcname if isinstance(s, ast.String)]
        builtin = len(parts) == 1 or parts[0] == "pg_catalog"
        key = names.function_name(n.funcname, plan)
        own = key in plan.functions or (len(parts) == 1 and (DEFAULT_SCHEMA, parts[-1])
                                        in plan.functions)
        if parts[-1].lower() == "set_config":
            plan.search_path_changed()
        if not own and sets_own_sequence(n, plan):
            continue  # moves a sequence nobody has drawn from yet (deploy.hazards.sequence)
        if own or (query and not (builtin and parts[-1].lower() in SAFE_FUNCTIONS)):
            name = names.qname(key) if not builtin or own else parts[-1]
            if name not in seen:
                seen.add(name)
                out.add(f"calls {name}(): {names.label(sql)}", UNVERIFIED)
            plan.search_path_changed()
