"""Small helpers the repairs share: parse one statement, quote names as the catalogs do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from pglast import ast, keywords, parser
from pglast.stream import IndentedStream

from deploy import statements

# quote_ident() leaves a name bare when it is lower-case, starts with a letter or _, and is
# not a keyword (except unreserved ones); this mirrors it so keys match the fingerprint's.
_BARE = re.compile(r"[a-z_][a-z0-9_$]*\Z")
_QUOTED_KEYWORDS = (
    keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS
)


def ident(name: str) -> str:
    """`name` quoted exactly as PostgreSQL's quote_ident() / format('%I') would."""
    if _BARE.match(name) and name not in _QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """`schema.name`, each part quoted as format('%I.%I') does (the fingerprint's keys)."""
    return f"{ident(schema)}.{ident(name)}"


def literal(text: str) -> str:
    """A standard-conforming SQL string literal for `text`."""
    return "'" + text.replace("'", "''") + "'"


# Trees parsed during one diff, by statement text: ~15 repairs each parse every statement, and
# building pglast's Python tree (~0.4 ms for a CREATE TABLE) was 80% of a diff at 1000 tables.
# Shared trees are read-only: a repair that edits a tree takes its own (parse_fresh).
_memo: dict[str, ast.Node | None] | None = None


@contextmanager
def parse_memo() -> Iterator[None]:
    """Within the block, parse_one parses each distinct text once (trees are then shared)."""
    global _memo
    outer, _memo = _memo, {} if _memo is None else _memo
    try:
        yield
    finally:
        _memo = outer  # dropped with the block: the trees are only worth one diff's memory


def parse_one(sql: str) -> ast.Node | None:
    """The parse tree of a single statement, or None when it is not exactly one statement.

    Inside parse_memo() the tree may be shared with other callers: never modify it."""
    if _memo is None:
        return parse_fresh(sql)
    try:
        return _memo[sql]
    except KeyError:
        tree = _memo[sql] = _parse_shared(sql)
        return tree


def _parse_shared(sql: str) -> ast.Node | None:
    """parse_fresh's tree, also offered to deploy.statements: the plan body these statements
    end up in is then split there without building every tree a second time; and a text
    parsed before (the plan a check replays, then diffs again) gives its trees here."""
    known = statements.known_tree(sql)
    if known is not None:
        return known
    try:
        parsed = parser.parse_sql(sql)
    except parser.ParseError:
        return None
    if len(parsed) != 1:
        return None
    raw = parsed[0]
    statements.remember(sql, raw.stmt_location, raw.stmt_len, raw.stmt)
    return raw.stmt


def parse_fresh(sql: str) -> ast.Node | None:
    """parse_one's tree, parsed now and owned by the caller (who may modify it)."""
    try:
        parsed = parser.parse_sql(sql)
    except parser.ParseError:
        return None
    return parsed[0].stmt if len(parsed) == 1 else None


def deparse(node: ast.Node) -> str:
    """A parse tree back to SQL, laid out for a reviewer, with the closing semicolon."""
    return IndentedStream(comma_at_eoln=True)(node) + ";"
