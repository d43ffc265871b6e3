"""Small helpers the repairs share: parse one statement, quote names as the catalogs do."""

from __future__ import annotations

import re

from pglast import ast, keywords, parser
from pglast.stream import IndentedStream

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


def parse_one(sql: str) -> ast.Node | None:
    """The parse tree of a single statement, or None when it is not exactly one statement."""
    try:
        parsed = parser.parse_sql(sql)
    except parser.ParseError:
        return None
    return parsed[0].stmt if len(parsed) == 1 else None


def deparse(node: ast.Node) -> str:
    """A parse tree back to SQL, laid out for a reviewer, with the closing semicolon."""
    return IndentedStream(comma_at_eoln=True)(node) + ";"
