"""classify(): read a plan top to bottom, hand each statement to the rule module of its kind,
and remember what the plan created (statements on those objects carry no hazards)."""

from __future__ import annotations

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.alter_table import classify_alter_table
from deploy.hazards.dml import DML_NODES, classify_dml, classify_truncate
from deploy.hazards.drop import classify_drop
from deploy.hazards.index import (
    classify_cluster,
    classify_index,
    classify_reindex,
    classify_vacuum,
)
from deploy.hazards.model import ALL_KINDS, KINDS, TEMP_SCHEMA, Hazard, PlanState, Result
from deploy.hazards.rename import classify_alter_enum, classify_rename, classify_set_schema
from deploy.hazards.squawk import squawk_hazards
from deploy.hazards.unverified import classify_unverified
from deploy.statements import ParsedStatement, parse, walk

# Statements whose rules are complete: squawk findings on them are not added.
_DECIDED_NODES = (
    ast.DropStmt,
    ast.RenameStmt,
    ast.AlterObjectSchemaStmt,
    ast.AlterEnumStmt,
    ast.IndexStmt,
    ast.TruncateStmt,
    ast.DeleteStmt,
    ast.UpdateStmt,
    ast.InsertStmt,
    ast.MergeStmt,
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
    ast.DoStmt,
    ast.CallStmt,
)


def classify(sql: str, *, use_squawk: bool = True) -> list[Hazard]:
    """Hazards of a plan (body or whole file), ordered by line then kind, each text once.
    Raises StatementError when the SQL does not parse; squawk is skipped when not installed."""
    parsed = parse(sql)
    plan = PlanState(creates=[_creations(p.node) for p in parsed])
    results = []
    for index, p in enumerate(parsed):
        result = Result()
        _classify_statement(p, index, plan, result)
        results.append(result)

    hazards = [
        Hazard(kind, names.clean(f"{kind} {phrase}"), p.statement.line)
        for p, result in zip(parsed, results, strict=True)
        for kind, phrase in result.found
    ]
    if use_squawk and parsed:
        hazards.extend(squawk_hazards(sql, parsed, results))

    hazards.sort(key=lambda h: (h.line, KINDS.index(h.kind), h.text))
    seen: set[str] = set()
    unique = []
    for hazard in hazards:
        if hazard.text not in seen:
            seen.add(hazard.text)
            unique.append(hazard)
    return unique


def _classify_statement(p: ParsedStatement, index: int, plan: PlanState, out: Result) -> None:
    node = p.node
    if isinstance(node, _DECIDED_NODES):
        out.decided |= ALL_KINDS
    if isinstance(node, ast.CreateStmt) and node.partbound is None:
        out.decided |= ALL_KINDS  # PARTITION OF locks (and may scan) an existing parent
    # Rules see the names as they stand before the statement; then the statement's own
    # creations count, and code it runs may have changed search_path.
    if isinstance(node, ast.DropStmt):
        classify_drop(node, index, plan, out)
    elif isinstance(node, ast.AlterTableStmt):
        classify_alter_table(node, p.statement.sql, plan, out)
    elif isinstance(node, ast.RenameStmt):
        classify_rename(node, plan, out)
    elif isinstance(node, ast.AlterObjectSchemaStmt):
        classify_set_schema(node, plan, out)
    elif isinstance(node, ast.AlterEnumStmt):
        classify_alter_enum(node, plan, out)
    elif isinstance(node, ast.IndexStmt):
        classify_index(node, plan, out)
    elif isinstance(node, ast.ReindexStmt):
        classify_reindex(node, plan, out)
    elif isinstance(node, ast.VacuumStmt):
        classify_vacuum(node, plan, out)
    elif isinstance(node, ast.ClusterStmt):
        classify_cluster(node, plan, out)
    elif isinstance(node, ast.TruncateStmt):
        classify_truncate(node, plan, out)
    if any(isinstance(n, DML_NODES) for n in walk(node)):
        classify_dml(node, p.statement.sql, plan, out)
    classify_unverified(node, p.statement.sql, plan, out)
    _record_creations(node, plan)


def _record_creations(node: ast.Node, plan: PlanState) -> None:
    """Objects the statement creates. IF NOT EXISTS may have met an old object: only a plain
    CREATE proves it is new."""
    if isinstance(node, ast.CreateStmt):
        if not node.if_not_exists:
            plan.relations.add(names.created_relation(node.relation, plan))
    elif isinstance(node, ast.CreateTableAsStmt):
        if not node.if_not_exists:
            plan.relations.add(names.created_relation(node.into.rel, plan))
    elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        plan.relations.add(names.created_relation(node.intoClause.rel, plan))
    elif isinstance(node, ast.CreateSeqStmt):
        if not node.if_not_exists:
            plan.relations.add(names.created_relation(node.sequence, plan))
    elif isinstance(node, ast.ViewStmt):
        key = _view_key(node, plan)
        plan.views.add(key)
        if not node.replace:  # OR REPLACE may be replacing a view old code uses
            plan.relations.add(key)
    elif isinstance(node, ast.CreateEnumStmt):
        plan.types.add(names.created_type(node.typeName, plan))
    elif isinstance(node, ast.CompositeTypeStmt):
        plan.types.add(names.created_relation(node.typevar, plan))
    elif isinstance(node, ast.CreateDomainStmt):
        plan.types.add(names.created_type(node.domainname, plan))
    elif isinstance(node, ast.CreateFunctionStmt):
        plan.functions.add(names.function_name(node.funcname, plan))


def _view_key(node: ast.ViewStmt, plan: PlanState) -> tuple[str, str]:
    """A view on a temporary relation is itself temporary (the server says so in a NOTICE)."""
    key = names.created_relation(node.view, plan)
    if not node.view.schemaname and any(
        isinstance(n, ast.RangeVar) and names.relation(n, plan)[0] == TEMP_SCHEMA
        for n in walk(node.query)
    ):
        return (TEMP_SCHEMA, key[1])
    return key


def _creations(node: ast.Node) -> set[tuple]:
    """Keys of the views and functions a statement (re)creates (read before classifying, to
    spot drop-then-recreate; names resolved with the pinned search_path)."""
    plan = PlanState()
    if isinstance(node, ast.ViewStmt):
        return {("relation", *names.created_relation(node.view, plan))}
    if isinstance(node, ast.CreateTableAsStmt) and node.objtype == enums.ObjectType.OBJECT_MATVIEW:
        return {("relation", *names.created_relation(node.into.rel, plan))}
    if isinstance(node, ast.CreateFunctionStmt):
        schema, name = names.function_name(node.funcname, plan)
        inputs = tuple(
            names.deparse(p.argType)
            for p in node.parameters or ()
            if p.mode not in (enums.FunctionParameterMode.FUNC_PARAM_OUT,
                              enums.FunctionParameterMode.FUNC_PARAM_TABLE)
        )
        # A bare `DROP FUNCTION f` (no argument list) matches any signature.
        return {("function", schema, name, inputs), ("function", schema, name, None)}
    return set()
