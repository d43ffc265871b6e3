"""Split plan SQL into statements with PostgreSQL's own parser (pglast / libpg_query).

Nothing here uses regular expressions on SQL: statement boundaries come from the parser,
and whether a statement may run inside a transaction block is read off its parse tree.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy.lazy import lazy_module

if TYPE_CHECKING:
    from pglast import ast, enums, parser
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())
    parser = lazy_module("pglast.parser", globals())

# Tokens that carry no SQL: a statement's text starts and ends at the first and last
# token that is not one of these.
_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})

DEFAULT_SCHEMA = "public"


class StatementError(ValueError):
    """SQL that PostgreSQL's parser rejects; `line` is 1-based in the text that was split."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"SQL syntax error on line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Statement:
    sql: str  # exactly as written, without the trailing semicolon; inner comments kept
    line: int  # 1-based line of the statement's first token
    transactional: bool  # False: PostgreSQL refuses it inside a transaction block


@dataclass(frozen=True)
class ParsedStatement:
    """A statement with its parse tree and its character span [start, end) in the source."""

    statement: Statement
    node: ast.Node
    start: int
    end: int


def split(sql: str) -> list[Statement]:
    """Statements of the SQL text in source order; comments outside statements are dropped.
    Raises StatementError (naming the line) when PostgreSQL's parser rejects the text."""
    return [p.statement for p in parse(sql)]


# Parse results, so each text is parsed once per process: the same plan body is split by
# the runner, classified by hazards and proven, and each statement is looked at again alone
# (transaction boundary, concurrent index). Building pglast's Python tree is the cost
# (about 1 s per 3000 statements); the trees are read, never modified.
_PARSED: dict[str, tuple[ParsedStatement, ...]] = {}
_NODES: dict[str, ast.Node] = {}  # a statement's text -> its parse tree
_MEMO_TEXTS = 16  # whole texts kept (plan bodies; the oldest goes first)
_MEMO_NODES = 200_000  # statements kept before the node memo starts over


def parse(sql: str) -> list[ParsedStatement]:
    """Like split(), but also return each statement's parse tree and character span."""
    cached = _PARSED.get(sql)
    if cached is None:
        cached = tuple(_parse(sql))
        if len(_PARSED) >= _MEMO_TEXTS:
            del _PARSED[next(iter(_PARSED))]
        _PARSED[sql] = cached
        if len(_NODES) + len(cached) > _MEMO_NODES:
            _NODES.clear()
        for parsed in cached:
            _NODES.setdefault(parsed.statement.sql, parsed.node)
    return list(cached)


def forget_all() -> None:
    """Empty the parse memo: for a caller that is done with every text parsed so far (later
    parses of the same texts still give the same answers, only slower)."""
    _PARSED.clear()
    _NODES.clear()
    _REGIONS.clear()


# Trees by statement region: the text from a statement's first token to its `;` (or the end),
# without the whitespace around it. A plan body is the differ's statements joined, and the
# differ already built each one's tree (deploy.differ.sqltext.parse_one hands them here), so
# the body's parse only asks PostgreSQL where the statements are (pglast's split builds no
# Python tree) and reuses those trees. Value: (tree, start, end) of the statement's text
# inside the key (comments trimmed), start/end None until first needed.
_REGIONS: dict[str, tuple[ast.Node, int | None, int | None]] = {}
_SQL_SPACE = " \t\n\r\f\v"  # what PostgreSQL's scanner skips between tokens


def remember(sql: str, location: int, length: int, node: ast.Node) -> None:
    """Offer the tree of a statement of `sql` (its raw statement's location and length) to
    later parses of texts holding the same statement. The tree must never be modified."""
    key = _region_key(sql[location:location + length] if length else sql[location:])
    if key is not None and key not in _REGIONS:
        if len(_REGIONS) >= _MEMO_NODES:
            _REGIONS.clear()
        _REGIONS[key] = (node, None, None)


def known_tree(sql: str) -> ast.Node | None:
    """The tree of `sql` (one statement, with or without its `;`) if a parse so far built
    it, else None (then parse it). Shared: never modify it."""
    text = sql.strip(_SQL_SPACE)
    if text.endswith(";"):
        text = text[:-1].rstrip(_SQL_SPACE)
    # Keys are whole statement regions: one followed by `;` parses to the same tree.
    entry = _REGIONS.get(text)
    return entry[0] if entry is not None else None


def _region_key(region: str) -> str | None:
    """The region without SQL whitespace around it, or None when Python's notion of
    whitespace (what pglast's split strips) would strip something else as well."""
    key = region.strip(_SQL_SPACE)
    return key if key and key == region.strip() else None


def _code_span(text: str) -> tuple[int, int] | None:
    """[start, end) of a statement region's code: comments and stray `;` tokens around it
    left out (None when there is no code)."""
    if "--" not in text and "/*" not in text and ";" not in text:
        return 0, len(text)  # only tokens: the stripped region is the code
    code = [t for t in parser.scan(text)
            if t.name not in _COMMENT_TOKENS and t.name != "ASCII_59"]
    if not code:  # cannot happen for a statement the parser accepted
        return None
    return code[0].start, code[-1].end + 1


def _parse(sql: str) -> list[ParsedStatement]:
    if _REGIONS:
        known = _parse_known(sql)
        if known is not None:
            return known
    return _parse_whole(sql)


def _parse_known(sql: str) -> list[ParsedStatement] | None:
    """The parse of a text most of whose statements have known trees; None when that does
    not hold (or the text needs anything unusual), and the whole text is parsed instead."""
    try:
        slices = parser.split(sql, with_parser=True, only_slices=True)
    except parser.ParseError:
        return None  # the whole parse raises it, naming the line
    keys = []
    for piece in slices:
        for index in (piece.start - 1, piece.stop):  # what split stripped next to the text
            if 0 <= index < len(sql) and sql[index].isspace() and sql[index] not in _SQL_SPACE:
                return None
        keys.append(sql[piece])
    misses = sum(1 for key in keys if key not in _REGIONS)
    if misses * 2 >= len(keys):  # mostly new statements: one parse of the whole text
        return None
    newlines = [i for i, ch in enumerate(sql) if ch == "\n"]
    result = []
    for piece, key in zip(slices, keys, strict=True):
        entry = _REGIONS.get(key)
        if entry is None:  # parsed alone: it lexes as in the whole text (it ends at a `;`)
            raw_stmts = parser.parse_sql(key)
            if len(raw_stmts) != 1:  # cannot happen for a region of a parsed text
                return None
            entry = (raw_stmts[0].stmt, None, None)
        node, code_start, code_end = entry
        if code_start is None or code_end is None:
            span = _code_span(key)
            if span is None:
                continue
            code_start, code_end = span
            _REGIONS[key] = (node, code_start, code_end)
        start, end = piece.start + code_start, piece.start + code_end
        result.append(_parsed(sql, newlines, node, start, end))
    return result


def _parse_whole(sql: str) -> list[ParsedStatement]:
    try:
        raw_stmts = parser.parse_sql(sql)
    except parser.ParseError as exc:
        raise _statement_error(sql, exc, 0) from None

    # pglast reports character (not UTF-8 byte) offsets for both the parse tree and the
    # scanner, so slicing the str directly is correct with non-ASCII text.
    newlines = [i for i, ch in enumerate(sql) if ch == "\n"]
    result = []
    for raw in raw_stmts:
        region_start = raw.stmt_location
        # stmt_len == 0 means "up to the end of the input" (last statement, no semicolon).
        region_end = region_start + raw.stmt_len if raw.stmt_len else len(sql)
        # Each statement's region is scanned alone (it starts and ends at a top-level `;`, so
        # it lexes as in the whole text): the tokens of a whole 3000-statement plan body
        # cost ~35 MB at once, one statement's next to nothing. A region without comments or
        # `;` is not scanned at all: its code is the region without the whitespace around.
        region = sql[region_start:region_end]
        lead = len(region) - len(region.lstrip(_SQL_SPACE))
        try:
            span = _code_span(region[lead:].rstrip(_SQL_SPACE))
        except parser.ParseError as exc:  # cannot happen for text the parser accepted
            raise _statement_error(sql, exc, region_start + lead) from None
        if span is None:  # cannot happen for a statement the parser accepted
            continue
        start, end = region_start + lead + span[0], region_start + lead + span[1]
        node = raw.stmt
        key = _region_key(region)
        if key is not None and key not in _REGIONS and len(_REGIONS) < _MEMO_NODES:
            _REGIONS[key] = (node, span[0], span[1])
        result.append(_parsed(sql, newlines, node, start, end))
    return result


def _parsed(sql: str, newlines: list[int], node: ast.Node, start: int,
            end: int) -> ParsedStatement:
    """The statement at sql[start:end] with its tree; `newlines`: the text's '\\n' offsets."""
    statement = Statement(
        sql=sql[start:end],
        line=bisect.bisect_left(newlines, start) + 1,
        transactional=_is_transactional(node),
    )
    return ParsedStatement(statement, node, start, end)


def _statement_error(sql: str, exc: parser.ParseError, offset: int) -> StatementError:
    message, index = exc.args[0], exc.args[1] if len(exc.args) > 1 else None
    # An error "at end of input" has no index: blame the last line.
    return StatementError(_line_of(sql, offset + index if index is not None else len(sql)),
                          message)


def is_concurrent_index_build(stmt: Statement | str) -> tuple[str, str] | None:
    """(schema, index name) if the statement is a named CREATE INDEX CONCURRENTLY, else None.
    Unnamed builds give None: the server picks the name, so a leftover cannot be found."""
    node = _single_node(stmt)
    if not isinstance(node, ast.IndexStmt) or not node.concurrent or not node.idxname:
        return None
    # An index always lives in its table's schema.
    return (node.relation.schemaname or DEFAULT_SCHEMA, node.idxname)


@functools.cache
def _transaction_boundaries() -> dict[int, str]:
    """Statements that end (or start) the transaction a plan runs in. Savepoints stay inside."""
    return {
        enums.TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN",
        enums.TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
        enums.TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT",
        enums.TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
        enums.TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
        enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
        enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
    }


def transaction_boundary(stmt: Statement | str) -> str | None:
    """The command's name if the statement begins or ends a transaction (BEGIN, COMMIT,
    ROLLBACK, END, PREPARE TRANSACTION, …), else None; SAVEPOINT and RELEASE are not."""
    node = _single_node(stmt)
    if isinstance(node, ast.TransactionStmt):
        return _transaction_boundaries().get(node.kind)
    return None


def referenced_relations(stmt: Statement | str) -> list[str]:
    """Quoted, schema-qualified (public if unqualified) names of the relations a statement
    mentions, as to_regclass() accepts them, sorted, each once."""
    node = _single_node(stmt)
    names = {
        f"{_quote(n.schemaname or DEFAULT_SCHEMA)}.{_quote(n.relname)}"
        for n in find(node, ast.RangeVar)
        if n.relname
    }
    return sorted(names)


def walk(node: object) -> Iterator[ast.Node]:
    """Every pglast node under `node` (itself included), depth first, children in attribute
    order (a node's own fields, then each list's items in order)."""
    # One traversal serves both: find() is iterative and reads only the attributes that
    # can hold nodes (a recursive generator was 4.7M calls for one 1000-table plan).
    return iter(find(node, ast.Node))


def find(node: object, types: type | tuple[type, ...]) -> list[ast.Node]:
    """The nodes under `node` (itself included) that are instances of `types`, in walk()
    order: one pass instead of a generator handing every node to the caller."""
    node_type = ast.Node
    found = []
    stack = [node]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, node_type):
            if isinstance(item, types):
                found.append(item)
            attrs = _NODE_ATTRS.get(type(item))
            if attrs is None:
                attrs = _node_attrs(type(item))
            children = [child for child in map(item.__getattribute__, attrs)
                        if child is not None]
            if children:
                push(reversed(children))
        elif isinstance(item, tuple | list):
            push(reversed(item))
    return found


# Per node class, the attributes that may hold a node or a list (its scalar fields, names,
# flags, enums and locations never do), in the class's attribute order.
_NODE_ATTRS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool)


def _node_attrs(cls: type) -> tuple[str, ...]:
    slots = cls.__slots__
    if isinstance(slots, dict):
        attrs = tuple(name for name, info in slots.items() if _may_hold_nodes(info[1]))
    else:  # not pglast's usual slot table: read every attribute
        attrs = tuple(slots)
    _NODE_ATTRS[cls] = attrs
    return attrs


def _may_hold_nodes(py_type: type | tuple[type, ...]) -> bool:
    """Whether a slot declared with these Python types can hold a node or a sequence."""
    import enum  # noqa: PLC0415 - only read when a node class is first seen

    types = py_type if isinstance(py_type, tuple) else (py_type,)
    return not all(
        isinstance(t, type) and (t in _SCALARS or issubclass(t, enum.Enum)
                                 or t.__name__ == "Decimal")
        for t in types
    )


def qualified_name(names: Sequence[ast.Node] | None) -> tuple[str, str]:
    """(schema, name) from a parse-tree name list, defaulting the schema to public."""
    parts = [n.sval for n in names or () if isinstance(n, ast.String)]
    if not parts:
        return (DEFAULT_SCHEMA, "")
    if len(parts) == 1:
        return (DEFAULT_SCHEMA, parts[0])
    return (parts[-2], parts[-1])


def _single_node(stmt: Statement | str) -> ast.Node | None:
    sql = stmt.sql if isinstance(stmt, Statement) else stmt
    # A statement split out of a text parses alone to the same tree (locations aside, which
    # nothing here reads): reuse it instead of parsing the statement a second time.
    node = _NODES.get(sql)
    if node is not None:
        return node
    parsed = parse(sql)
    return parsed[0].node if len(parsed) == 1 else None


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _line_of(sql: str, index: int) -> int:
    return sql.count("\n", 0, index) + 1


def option_enabled(options: Sequence[ast.Node] | None, name: str) -> bool:
    """Whether a parse-tree DefElem option list turns `name` on (a bare option means true)."""
    for opt in options or ():
        if isinstance(opt, ast.DefElem) and opt.defname == name:
            arg = opt.arg
            if arg is None:
                return True
            if isinstance(arg, ast.Boolean):
                return bool(arg.boolval)
            if isinstance(arg, ast.Integer):
                return arg.ival != 0
            if isinstance(arg, ast.String):
                return arg.sval.lower() in ("true", "on", "1", "yes")
            return True
    return False


@functools.cache
def _reindex_outside_tx() -> frozenset[int]:
    """REINDEX of these kinds refuses a transaction block even without CONCURRENTLY."""
    return frozenset(
        {
            enums.ReindexObjectType.REINDEX_OBJECT_SCHEMA,
            enums.ReindexObjectType.REINDEX_OBJECT_SYSTEM,
            enums.ReindexObjectType.REINDEX_OBJECT_DATABASE,
        }
    )


@functools.cache
def _always_outside_tx() -> tuple[type, ...]:
    """Statements PostgreSQL always runs outside a transaction block (PreventInTransactionBlock)."""
    return (
        ast.CreatedbStmt,
        ast.DropdbStmt,
        ast.AlterSystemStmt,
        ast.CreateTableSpaceStmt,
        ast.DropTableSpaceStmt,
        ast.DropSubscriptionStmt,
    )


def _is_transactional(node: ast.Node) -> bool:
    if isinstance(node, _always_outside_tx()):
        return False
    if isinstance(node, ast.IndexStmt | ast.DropStmt):
        return not node.concurrent
    if isinstance(node, ast.ReindexStmt):
        return not (node.kind in _reindex_outside_tx()
                    or option_enabled(node.params, "concurrently"))
    if isinstance(node, ast.VacuumStmt):
        return not node.is_vacuumcmd  # ANALYZE alone is fine in a transaction
    if isinstance(node, ast.AlterDatabaseStmt):
        return not any(
            isinstance(o, ast.DefElem) and o.defname == "tablespace" for o in node.options or ()
        )
    if isinstance(node, ast.CreateSubscriptionStmt):
        # create_slot defaults to true, and creating a slot needs to be outside a transaction.
        opts = node.options or ()
        explicit = any(isinstance(o, ast.DefElem) and o.defname == "create_slot" for o in opts)
        return explicit and not option_enabled(opts, "create_slot")
    if isinstance(node, ast.AlterEnumStmt):
        # ADD VALUE: a value added in a transaction cannot be used before it commits.
        return node.newVal is None or node.oldVal is not None
    if isinstance(node, ast.AlterTableStmt):
        return not any(
            isinstance(cmd, ast.AlterTableCmd)
            and cmd.subtype == enums.AlterTableType.AT_DetachPartition
            and isinstance(cmd.def_, ast.PartitionCmd)
            and cmd.def_.concurrent
            for cmd in node.cmds or ()
        )
    return True
