"""Sequences: a sequence that existed before the plan is in use by the running code, and
moving it back makes it hand out values the tables already hold (duplicate keys).

ALTER SEQUENCE … RESTART on such a sequence is BACKWARD_INCOMPATIBLE. `setval()` is a call,
so the default-deny already asks for an approval; it is proven harmless only on a sequence
this plan created in the transaction still open (nobody has drawn from it yet: a step that
runs outside the transaction commits it), named by a literal — the form the identity
repairs write. `greatest(last_value, max(id))` proves nothing: a concurrent nextval between
the read and the set is lost.
"""

from __future__ import annotations

from pglast import ast, parser
from pglast.parser import ParseError

from deploy.hazards import names
from deploy.hazards.alter_table import REPEATS, option_given
from deploy.hazards.model import BACKWARD_INCOMPATIBLE, PlanState, Result
from deploy.statements import find


def classify_alter_sequence(node: ast.AlterSeqStmt, plan: PlanState, out: Result) -> None:
    """RESTART of a sequence that existed before the plan."""
    key = names.relation(node.sequence, plan)
    if key not in plan.relations and option_given(node.options, "restart"):
        out.add(f"restart sequence {names.qname(key)} ({REPEATS})", BACKWARD_INCOMPATIBLE)


def sets_own_sequence(call: ast.FuncCall, plan: PlanState) -> bool:
    """Whether `call` is [pg_catalog.]setval('<name>'[::regclass], …) on a sequence this plan
    created in the transaction still open (and still holds under that name)."""
    if not _is_setval(call):
        return False
    target = _sequence_named(call.args[0]) if call.args else None
    if target is None:
        return False
    key = names.relation(target, plan)
    return key in plan.relations and key in plan.fresh_sequences


def set_sequences(node: ast.Node) -> list[ast.RangeVar]:
    """The sequences a query sets by name with [pg_catalog.]setval('<name>', …)."""
    found = []
    for n in find(node, ast.FuncCall):
        if _is_setval(n) and n.args:
            target = _sequence_named(n.args[0])
            if target is not None:
                found.append(target)
    return found


def _is_setval(call: ast.FuncCall) -> bool:
    parts = [s.sval for s in call.funcname if isinstance(s, ast.String)]
    return parts[-1].lower() == "setval" and (len(parts) == 1 or parts[0] == "pg_catalog")


def _sequence_named(arg: ast.Node) -> ast.RangeVar | None:
    """The relation a regclass argument names when it is a string literal, as the server
    reads the text (quotes, case folding), else None."""
    if isinstance(arg, ast.TypeCast) and arg.typeName.names[-1].sval == "regclass":
        arg = arg.arg
    if not (isinstance(arg, ast.A_Const) and isinstance(arg.val, ast.String)):
        return None
    # regclass input is a possibly qualified name: read it with the server's own parser.
    try:
        [raw] = parser.parse_sql(f"SELECT FROM {arg.val.sval}")
    except (ParseError, ValueError):
        return None
    select = raw.stmt
    if (not isinstance(select, ast.SelectStmt) or len(select.fromClause or ()) != 1
            or select.whereClause is not None or select.targetList):
        return None
    rv = select.fromClause[0]
    if not isinstance(rv, ast.RangeVar) or rv.alias is not None or rv.catalogname \
            or not rv.inh:
        return None
    return rv

