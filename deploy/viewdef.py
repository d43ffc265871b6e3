"""View definitions printed by PostgreSQL 16+ brought back to the form 14 and 15 print.

Since PostgreSQL 16 a view's stored query no longer carries the OLD/NEW range-table
entries, so `pg_get_viewdef` leaves the column references of a top-level SELECT over a
single relation unqualified (`SELECT id FROM app.t t`) where 14 and 15 printed
`SELECT t.id FROM app.t t`. The same view must give the same fingerprint on every major,
and 15's fingerprints are already in committed plan headers, so the 16+ text is turned
into the 15 text: the qualifier is inserted in front of each unqualified column reference
of that query level. Everything else (formatting, casts, subqueries, which PostgreSQL
prints the same way) is left byte for byte as the server printed it.
"""

from __future__ import annotations

from pglast import ast, enums, keywords, parse_sql
from pglast.parser import ParseError

_SAFE_FIRST = set("abcdefghijklmnopqrstuvwxyz_")
_SAFE_REST = _SAFE_FIRST | set("0123456789$")
_QUOTED_KEYWORDS = (
    keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS
)


def quote_identifier(name: str) -> str:
    """Quote `name` exactly as PostgreSQL's quote_identifier() would."""
    safe = (
        bool(name) and name[0] in _SAFE_FIRST and all(ch in _SAFE_REST for ch in name)
    )
    # Every keyword but the unreserved ones is quoted (ScanKeywordLookup in ruleutils.c).
    if safe and name in _QUOTED_KEYWORDS:
        safe = False
    return name if safe else '"' + name.replace('"', '""') + '"'


def qualify_like_pg15(definition: str) -> str:
    """Return a PostgreSQL 16+ `pg_get_viewdef` text as PostgreSQL 15 prints the same view.

    Only a top-level SELECT whose FROM holds exactly one relation (no join, no set
    operation) differs between the majors; any other text is returned unchanged, and so
    is a text the parser cannot read (it then simply stays as the server printed it).
    """
    try:
        statements = parse_sql(definition)
    except ParseError:
        return definition
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return definition
    select = statements[0].stmt
    if select.op != enums.SetOperation.SETOP_NONE or not select.fromClause:
        return definition
    if len(select.fromClause) != 1:
        return definition
    refname = _refname(select.fromClause[0])
    if refname is None:
        return definition
    positions: list[int] = []
    for name, value in _fields(select):
        if name in ("fromClause", "withClause", "intoClause"):
            continue
        _collect_unqualified(value, positions)
    prefix = quote_identifier(refname) + "."
    text = definition
    for position in sorted(set(positions), reverse=True):
        text = text[:position] + prefix + text[position:]
    return text


def _refname(item: object) -> str | None:
    """The name PostgreSQL qualifies the columns of a FROM item with."""
    alias = getattr(item, "alias", None)
    if alias is not None and alias.aliasname:
        return alias.aliasname
    if isinstance(item, ast.RangeVar):
        return item.relname
    return None  # a subquery or function without an alias: not something ruleutils prints


def _fields(node: ast.Node) -> list[tuple[str, object]]:
    return [(name, getattr(node, name, None)) for name in node]  # type: ignore[attr-defined]


def _collect_unqualified(value: object, positions: list[int]) -> None:
    """Locations of single-name column references at this query level (not in subqueries)."""
    if isinstance(value, list | tuple):
        for item in value:
            _collect_unqualified(item, positions)
        return
    if not isinstance(value, ast.Node):
        return
    if isinstance(value, ast.ColumnRef):
        fields = value.fields or ()
        if len(fields) == 1 and isinstance(fields[0], ast.String) and value.location >= 0:
            positions.append(value.location)
        return
    if isinstance(value, ast.SubLink):
        # A sub-select sees the outer query: PostgreSQL qualifies its columns on every major.
        _collect_unqualified(value.testexpr, positions)
        return
    for _name, child in _fields(value):
        _collect_unqualified(child, positions)
