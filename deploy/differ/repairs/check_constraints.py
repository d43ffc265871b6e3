"""CHECK constraints whose text does not survive a round trip through the parser.

`status IN ('a', 'b')` on a varchar column (also SQLAlchemy's `Enum(native_enum=False,
create_constraint=True)`) is stored as a text comparison against a varchar array coerced
to text[], and `pg_get_constraintdef` prints it as
`((status)::text = ANY ((ARRAY['a'::character varying, …])::text[]))`. migra copies that
text; parsing it again pushes the `::text[]` cast into each element
(`ARRAY[('a'::character varying)::text, …]`), a different expression: the plan never lands,
and every later diff re-creates the constraint.

Decision: the fix is in the generated SQL, not in the fingerprint's canonical form. The
fingerprint then keeps meaning "what the catalog stores" (so `pg_dump` of a planned
database equals the models' one), and no two really different checks can ever compare
equal. This repair turns that printed form back into the `IN (…)` / `NOT IN (…)` list the
catalog entry came from, when the compared column (or domain) is varchar; the planner's
proof still decides whether the result lands.
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import deparse, parse_fresh, qualified
from deploy.fingerprint import Description, split_key
from deploy.statements import walk


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Rewrite varchar `= ANY ((ARRAY[…])::text[])` checks into the IN lists they came from."""
    return [_rewrite(statement, ctx.after) for statement in statements]


def _rewrite(statement: str, after: Description) -> str:
    if "ANY" not in statement and "ALL" not in statement:
        return statement  # cheap filter: only printed IN / NOT IN lists need the parser
    node = parse_fresh(statement)  # rewritten in place below
    varchar_columns: set[str] = set()
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        table = qualified(node.relation.schemaname or "public", node.relation.relname)
        checks = [
            cmd.def_ for cmd in node.cmds or ()
            if isinstance(cmd, ast.AlterTableCmd)
            and cmd.subtype == enums.AlterTableType.AT_AddConstraint
            and isinstance(cmd.def_, ast.Constraint)
            and cmd.def_.contype == enums.ConstrType.CONSTR_CHECK
        ]
        varchar_columns = {
            split_key(key.removeprefix("column "))[-1]
            for key, value in after.items()
            if key.startswith(f"column {table}.") and value.startswith("type=character varying")
        }
    elif isinstance(node, ast.CreateDomainStmt):
        checks = [c for c in node.constraints or () if c.contype == enums.ConstrType.CONSTR_CHECK]
        if _is_varchar(node.typeName):
            varchar_columns = {"value"}  # the parser folds VALUE to lower case
    elif (isinstance(node, ast.AlterDomainStmt) and node.subtype == "C"
          and isinstance(node.def_, ast.Constraint)
          and node.def_.contype == enums.ConstrType.CONSTR_CHECK):
        # ALTER DOMAIN … ADD CONSTRAINT (repairs/domains.py) on a varchar domain.
        names = [n.sval for n in node.typeName]
        domain = qualified(*(["public", *names] if len(names) == 1 else names[-2:]))
        checks = [node.def_]
        if after.get(f"type {domain}", "").startswith("domain=character varying"):
            varchar_columns = {"value"}  # the parser folds VALUE to lower case
    else:
        return statement
    changed = False
    for check in checks:
        for expr in list(walk(check.raw_expr)):
            changed |= _to_in_list(expr, varchar_columns)
        replacement = _to_in_list_root(check.raw_expr, varchar_columns)
        if replacement is not None:
            check.raw_expr = replacement
            changed = True
    if not changed:
        return statement
    return deparse(node)


def _to_in_list(expr: ast.Node, varchar_columns: set[str]) -> bool:
    """Rewrite the children of `expr` that are printed IN lists, in place."""
    changed = False
    for attr in expr:
        child = getattr(expr, attr)
        if isinstance(child, ast.A_Expr):
            new = _to_in_list_root(child, varchar_columns)
            if new is not None:
                setattr(expr, attr, new)
                changed = True
        elif isinstance(child, tuple) and any(isinstance(c, ast.A_Expr) for c in child):
            items = [_to_in_list_root(c, varchar_columns) if isinstance(c, ast.A_Expr) else None
                     for c in child]
            if any(item is not None for item in items):
                pairs = zip(items, child, strict=True)
                setattr(expr, attr, tuple(n if n is not None else c for n, c in pairs))
                changed = True
    return changed


def _to_in_list_root(expr: ast.Node, varchar_columns: set[str]) -> ast.Node | None:
    """`(col)::text = ANY ((ARRAY['a'::varchar, …])::text[])` -> `col IN ('a', …)`; the
    `<> ALL` form -> `NOT IN`. None when `expr` is not that shape on a varchar column."""
    if not isinstance(expr, ast.A_Expr) or len(expr.name or ()) != 1:
        return None
    operator = expr.name[0].sval
    shape = {(enums.A_Expr_Kind.AEXPR_OP_ANY, "="), (enums.A_Expr_Kind.AEXPR_OP_ALL, "<>")}
    if (expr.kind, operator) not in shape:
        return None
    left, right = expr.lexpr, expr.rexpr
    if not (isinstance(left, ast.TypeCast) and _type_is(left.typeName, "text", array=False)):
        return None
    column = left.arg
    if not (isinstance(column, ast.ColumnRef) and len(column.fields) == 1
            and isinstance(column.fields[0], ast.String)
            and column.fields[0].sval in varchar_columns):
        return None
    if not (isinstance(right, ast.TypeCast) and _type_is(right.typeName, "text", array=True)
            and isinstance(right.arg, ast.A_ArrayExpr) and right.arg.elements):
        return None
    values = []
    for element in right.arg.elements:
        if not (isinstance(element, ast.TypeCast) and _is_varchar(element.typeName)
                and isinstance(element.arg, ast.A_Const)):
            return None
        values.append(element.arg)
    return ast.A_Expr(kind=enums.A_Expr_Kind.AEXPR_IN, name=(ast.String(sval=operator),),
                      lexpr=column, rexpr=tuple(values))


def _type_is(type_name: ast.TypeName, name: str, *, array: bool) -> bool:
    names = [n.sval for n in type_name.names or ()]
    return names[-1:] == [name] and bool(type_name.arrayBounds) == array


def _is_varchar(type_name: ast.TypeName) -> bool:
    names = [n.sval for n in type_name.names or ()]
    return names[-1:] == ["varchar"] and not type_name.arrayBounds
