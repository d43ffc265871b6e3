"""classify(): read a plan top to bottom, hand each statement to the rule module of its kind,
and remember what the plan created (statements on those objects carry no hazards)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pglast import ast, enums

from deploy.hazards import names
from deploy.hazards.alter_table import classify_alter_table, identity_sequences
from deploy.hazards.dml import DML_NODES, classify_dml, classify_truncate
from deploy.hazards.domain import classify_alter_domain
from deploy.hazards.drop import classify_drop
from deploy.hazards.index import (
    classify_cluster,
    classify_index,
    classify_refresh,
    classify_reindex,
    classify_vacuum,
)
from deploy.hazards.model import (
    ALL_KINDS,
    KINDS,
    TEMP_SCHEMA,
    Findings,
    Hazard,
    Key,
    PlanState,
    Result,
)
from deploy.hazards.rename import classify_alter_enum, classify_rename, classify_set_schema
from deploy.hazards.sequence import classify_alter_sequence, set_sequences
from deploy.hazards.squawk import start_squawk_hazards
from deploy.hazards.unverified import classify_unverified
from deploy.statements import ParsedStatement, find, parse

# Statements whose rules are complete: squawk findings on them are not added.
_DECIDED_NODES = (
    ast.DropStmt,
    ast.RenameStmt,
    ast.AlterObjectSchemaStmt,
    ast.AlterEnumStmt,
    ast.AlterDomainStmt,  # squawk bans every ADD CONSTRAINT; NOT VALID locks no table
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
    ast.SecLabelStmt,
    ast.RefreshMatViewStmt,
    ast.DoStmt,
    ast.CallStmt,
)


def classify(sql: str, *, use_squawk: bool = True) -> list[Hazard]:
    """Hazards of a plan (body or whole file), ordered by line then kind, each text once.
    Raises StatementError when the SQL does not parse; squawk is skipped when not installed."""
    known = _ANSWERS.get((sql, use_squawk))
    if known is not None:
        return list(known)
    answer = _classify(sql, use_squawk)
    if len(_ANSWERS) >= _ANSWER_TEXTS:
        del _ANSWERS[next(iter(_ANSWERS))]
    _ANSWERS[(sql, use_squawk)] = tuple(answer)
    return answer


# Whole answers per text (hazards are frozen): the planner classifies a generated plan
# while its proof runs and again once it landed; a reverse, while its proof runs and when
# its file is rendered. squawk's process then runs once per text, not twice (~0.15 s at
# 1000 tables).
_ANSWERS: dict[tuple[str, bool], tuple[Hazard, ...]] = {}
_ANSWER_TEXTS = 4  # a plan with and without squawk, its reverse, one more


def _classify(sql: str, use_squawk: bool) -> list[Hazard]:
    # squawk (a process of its own) lints while the rules run here.
    squawk = start_squawk_hazards(sql) if use_squawk and sql.strip() else None
    try:
        parsed = parse(sql)
        results = _RESULTS.get(sql)
        if results is None:
            results = _rule_results(parsed)
            if len(_RESULTS) >= _MEMO_TEXTS:
                del _RESULTS[next(iter(_RESULTS))]
            _RESULTS[sql] = results
    except BaseException:
        if squawk is not None:
            with contextlib.suppress(Exception):  # the parse error is the one to report
                squawk([], [])  # let it finish: no squawk process outlives the error
        raise

    hazards = [
        Hazard(kind, names.clean(f"{kind} {phrase}"), p.statement.line)
        for p, result in zip(parsed, results, strict=True)
        for kind, phrase in result.found
    ]
    if squawk is not None:
        hazards.extend(squawk(parsed, results))

    hazards.sort(key=lambda h: (h.line, KINDS.index(h.kind), h.text))
    seen: set[str] = set()
    unique = []
    for hazard in hazards:
        if hazard.text not in seen:
            seen.add(hazard.text)
            unique.append(hazard)
    return unique


# The rules' findings per text: the planner classifies a body twice (contract.split without
# squawk, then the plan's hazards with it), and the findings depend on the text alone.
# Kept compact (a 3000-statement body's Result objects were ~5 MB): most statements share
# one empty finding and one of a few `decided` sets.
_RESULTS: dict[str, list[Findings]] = {}
_MEMO_TEXTS = 2


def _rule_results(parsed: list[ParsedStatement]) -> list[Findings]:
    """Every statement's rule findings, in order (each sees what the plan did before it)."""
    plan = PlanState(creates=[_creations(p.node) for p in parsed],
                     transactional=[p.statement.transactional for p in parsed])
    shared: dict[frozenset[str], frozenset[str]] = {}
    results = []
    for index, p in enumerate(parsed):
        result = Result()
        _classify_statement(p, index, plan, result)
        decided = frozenset(result.decided)
        results.append(Findings(tuple(result.found), shared.setdefault(decided, decided)))
    return results


# One rule per statement kind; each sees the names as they stand before the statement.
# Called as rule(statement, its index in the plan, plan state, result).
Rule = Callable[[ParsedStatement, int, PlanState, Result], None]


def _on_node(rule: Callable[[Any, PlanState, Result], None]) -> Rule:
    return lambda p, _index, plan, out: rule(p.node, plan, out)


def _on_node_and_text(rule: Callable[[Any, str, PlanState, Result], None]) -> Rule:
    return lambda p, _index, plan, out: rule(p.node, p.statement.sql, plan, out)


_RULES: dict[type[ast.Node], Rule] = {
    # These look ahead: migra drops and re-creates views and functions, and the identity
    # repair sets a new identity's sequence after adding it.
    ast.DropStmt: lambda p, index, plan, out: classify_drop(p.node, index, plan, out),
    ast.AlterTableStmt: lambda p, index, plan, out: classify_alter_table(
        p.node, p.statement.sql, index, plan, out),
    ast.RefreshMatViewStmt: _on_node_and_text(classify_refresh),
    ast.RenameStmt: _on_node(classify_rename),
    ast.AlterObjectSchemaStmt: _on_node(classify_set_schema),
    ast.AlterEnumStmt: _on_node(classify_alter_enum),
    ast.AlterSeqStmt: _on_node(classify_alter_sequence),
    ast.AlterDomainStmt: _on_node(classify_alter_domain),
    ast.IndexStmt: _on_node(classify_index),
    ast.ReindexStmt: _on_node(classify_reindex),
    ast.VacuumStmt: _on_node(classify_vacuum),
    ast.ClusterStmt: _on_node(classify_cluster),
    ast.TruncateStmt: _on_node(classify_truncate),
}


_DML_OR_CALL = (ast.FuncCall, *DML_NODES)


def _classify_statement(p: ParsedStatement, index: int, plan: PlanState, out: Result) -> None:
    node = p.node
    if not p.statement.transactional:  # what ran before is committed: visible to everyone
        plan.fresh_sequences.clear()
    if isinstance(node, _DECIDED_NODES):
        out.decided |= ALL_KINDS
    if isinstance(node, ast.CreateStmt) and node.partbound is None:
        out.decided |= ALL_KINDS  # PARTITION OF locks (and may scan) an existing parent
    rule = _RULES.get(type(node))
    if rule is not None:
        rule(p, index, plan, out)
    # One pass for what the DML and the call rules both look for.
    found = find(node, _DML_OR_CALL)
    calls = [n for n in found if isinstance(n, ast.FuncCall)]
    if len(calls) < len(found):
        classify_dml(node, p.statement.sql, plan, out)
    # Then the statement's own creations count, and code it runs may have changed search_path.
    classify_unverified(node, p.statement.sql, plan, out, calls)
    _record_creations(node, plan)


# Where a CREATE names the relation or type it makes.
_NEW_RELATIONS: dict[type[ast.Node], Callable[[Any], ast.RangeVar]] = {
    ast.CreateStmt: lambda n: n.relation,
    ast.CreateTableAsStmt: lambda n: n.into.rel,
    ast.CreateSeqStmt: lambda n: n.sequence,
}
_NEW_TYPES: dict[type[ast.Node], Callable[[Any, PlanState], Key]] = {
    ast.CreateEnumStmt: lambda n, plan: names.created_type(n.typeName, plan),
    ast.CompositeTypeStmt: lambda n, plan: names.created_relation(n.typevar, plan),
    ast.CreateDomainStmt: lambda n, plan: names.created_type(n.domainname, plan),
}


def _record_creations(node: ast.Node, plan: PlanState) -> None:
    """Objects the statement creates. IF NOT EXISTS may have met an old object: only a plain
    CREATE proves it is new."""
    relation = _NEW_RELATIONS.get(type(node))
    if relation is not None:
        if not node.if_not_exists:
            key = names.created_relation(relation(node), plan)
            plan.relations.add(key)
            if isinstance(node, ast.CreateSeqStmt):
                plan.new_sequences({key})
            # A new table's identity columns make sequences (certain only when named).
            for element in getattr(node, "tableElts", None) or ():
                for c in getattr(element, "constraints", None) or ():
                    plan.new_sequences(identity_sequences(c, plan))
    elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        plan.relations.add(names.created_relation(node.intoClause.rel, plan))
    elif isinstance(node, ast.ViewStmt):
        key = _view_key(node, plan)
        plan.views.add(key)
        if not node.replace:  # OR REPLACE may be replacing a view old code uses
            plan.relations.add(key)
    elif type(node) in _NEW_TYPES:
        plan.types.add(_NEW_TYPES[type(node)](node, plan))
    elif isinstance(node, ast.CreateFunctionStmt):
        plan.functions.add(names.function_name(node.funcname, plan))


def _view_key(node: ast.ViewStmt, plan: PlanState) -> tuple[str, str]:
    """A view on a temporary relation is itself temporary (the server says so in a NOTICE)."""
    key = names.created_relation(node.view, plan)
    if not node.view.schemaname and any(
        names.relation(n, plan)[0] == TEMP_SCHEMA for n in find(node.query, ast.RangeVar)
    ):
        return (TEMP_SCHEMA, key[1])
    return key


def _creations(node: ast.Node) -> set[tuple]:
    """Keys of the views and functions a statement (re)creates and of the sequences it sets
    (read before classifying, to look ahead; names resolved with the pinned search_path)."""
    plan = PlanState()
    if isinstance(node, ast.ViewStmt):
        return {("relation", *names.created_relation(node.view, plan))}
    if isinstance(node, ast.CreateTableAsStmt) and node.objtype == enums.ObjectType.OBJECT_MATVIEW:
        return {("relation", *names.created_relation(node.into.rel, plan))}
    if isinstance(node, ast.SelectStmt):  # setval('seq', …): see alter_table._add_identity
        return {("setval", *names.relation(rv, plan)) for rv in set_sequences(node)}
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
