"""Splitting plan SQL into statements with PostgreSQL's parser (no database needed)."""

from __future__ import annotations

import pytest

from deploy.statements import (
    Statement,
    StatementError,
    is_concurrent_index_build,
    referenced_relations,
    split,
    transaction_boundary,
)

PLAN = """\
-- plan: add deck tags
-- from: sha256:0000000000000000000000000000000000000000000000000000000000000000
-- to:   sha256:1111111111111111111111111111111111111111111111111111111111111111
-- postgres: 15
-- hazard: DELETES_DATA drop column "public"."users"."legacy_score"

alter table "public"."users" drop column "legacy_score";

create table "public"."deck_tags" (
    "deck_id" bigint not null,
    "tag" character varying(64) not null -- the tag's label; may hold ü or 東京
);

CREATE INDEX CONCURRENTLY ix_cards_due ON public.flashcards USING btree (due_at);

CREATE OR REPLACE FUNCTION public.touch_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
    -- "Zeitstempel" aktualisieren; also ; inside the body
    new.updated_at := now();
    return new;
end;
$function$
;

/* déjà vu: a block comment before the trigger */
CREATE TRIGGER touch BEFORE UPDATE ON public.decks
    FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

alter table "public"."decks" alter column "title" set data type character varying(500)
    using "title"::character varying(500);
"""


def test_split_migra_plan_statements_lines_and_exact_text() -> None:
    statements = split(PLAN)
    assert [(s.line, s.transactional) for s in statements] == [
        (7, True),
        (9, True),
        (14, False),
        (16, True),
        (29, True),
        (32, True),
    ]
    assert statements[0].sql == 'alter table "public"."users" drop column "legacy_score"'
    # Inner comments (with non-ASCII) are kept, the closing ");" is cut at the semicolon.
    assert statements[1].sql == (
        'create table "public"."deck_tags" (\n'
        '    "deck_id" bigint not null,\n'
        '    "tag" character varying(64) not null -- the tag\'s label; may hold ü or 東京\n'
        ")"
    )
    assert statements[2].sql.startswith("CREATE INDEX CONCURRENTLY ix_cards_due")
    body = statements[3].sql
    assert body.startswith("CREATE OR REPLACE FUNCTION public.touch_updated_at()")
    assert body.endswith("end;\n$function$")  # the $$ body's semicolons do not split it
    assert "also ; inside the body" in body
    # A comment before a statement belongs to no statement.
    assert statements[4].sql.startswith("CREATE TRIGGER touch")
    assert statements[5].sql.endswith('using "title"::character varying(500)')


def test_every_statement_text_is_a_slice_of_the_source_at_its_line() -> None:
    lines = PLAN.splitlines()
    for statement in split(PLAN):
        first_line = statement.sql.splitlines()[0]
        assert lines[statement.line - 1].startswith(first_line)
        assert statement.sql in PLAN


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("", []),
        ("   \n\n", []),
        ("-- only a header\n-- hazard: nothing\n", []),
        ("select 1", [("select 1", 1)]),
        ("select 1;", [("select 1", 1)]),
        ("select 1;;\n\nselect 2", [("select 1", 1), ("select 2", 3)]),
        ("select 1; select 2;", [("select 1", 1), ("select 2", 1)]),
        ("select 1; -- trailing\n", [("select 1", 1)]),
        ("select 1 -- before the semicolon\n;", [("select 1", 1)]),
        ("select /* inside */ 1;", [("select /* inside */ 1", 1)]),
        # Multi-byte characters before and inside statements must not shift the slices.
        ("-- 日本語のコメント\nselect 'ünï; not a split';", [("select 'ünï; not a split'", 2)]),
        ("/* ✓ */ select 1; /* é */ select 2;", [("select 1", 1), ("select 2", 1)]),
        ('select "naïve" from "tæble"', [('select "naïve" from "tæble"', 1)]),
        (
            "select $$a;b$$, $x$ ; $$ ; $x$;\nselect E'it''s; \\' fine';",
            [("select $$a;b$$, $x$ ; $$ ; $x$", 1), ("select E'it''s; \\' fine'", 2)],
        ),
        ("\r\nselect 1;\r\nselect 2;\r\n", [("select 1", 2), ("select 2", 3)]),
    ],
)
def test_split_edge_cases(sql: str, expected: list[tuple[str, int]]) -> None:
    assert [(s.sql, s.line) for s in split(sql)] == expected


@pytest.mark.parametrize(
    ("sql", "line", "fragment"),
    [
        ("select 1;\n\nselect * fro users;", 3, "syntax error"),
        ("-- é ü ö 東京\nselect 1;\nalter table t drop colum x;", 3, 'near "x"'),
        ("select 1;\nselect 'unterminated;\n", 2, "unterminated quoted string"),
        ("select 1;\nselect (1", 2, "end of input"),
        ("create function f() returns int as $$ select 1;", 1, "unterminated dollar-quoted"),
    ],
)
def test_syntax_errors_name_the_line(sql: str, line: int, fragment: str) -> None:
    with pytest.raises(StatementError) as caught:
        split(sql)
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ('create index "ix" on "public"."t" using btree ("a")', True),
        ('CREATE INDEX CONCURRENTLY "ix" ON "public"."t" USING btree ("a")', False),
        ("create unique index concurrently if not exists ix on t (a)", False),
        ('drop index "public"."ix"', True),
        ('drop index concurrently if exists "public"."ix"', False),
        ("reindex index public.ix", True),
        ("reindex index concurrently public.ix", False),
        ("reindex (verbose) table concurrently public.t", False),
        ("reindex (concurrently false) table public.t", True),
        ("reindex schema public", False),
        ("reindex database app", False),
        ("vacuum", False),
        ("vacuum full public.t", False),
        ("vacuum (analyze) public.t", False),
        ("analyze public.t", True),
        ("create database app2", False),
        ("drop database app2", False),
        ("alter system set work_mem = '64MB'", False),
        ("create tablespace fast location '/mnt/fast'", False),
        ("drop tablespace fast", False),
        ("alter database app set tablespace fast", False),
        ("alter database app set work_mem = '8MB'", True),
        ('alter table "public"."events" detach partition "public"."ev_2020" concurrently', False),
        ('alter table "public"."events" detach partition "public"."ev_2020"', True),
        ("alter type \"public\".\"mood\" add value 'ecstatic'", False),
        ("alter type \"public\".\"mood\" add value if not exists 'calm' before 'happy'", False),
        # ADD VALUE commits alone (its value is unusable before); a rename stays in the plan.
        ("alter type \"public\".\"mood\" rename value 'calm' to 'serene'", True),
        ("create subscription s connection 'host=x' publication p", False),
        ("create subscription s connection 'host=x' publication p with (create_slot = 0)", True),
        ("drop subscription s", False),
        ('alter table "public"."users" drop column "legacy_score"', True),
        ("create or replace view public.v as select 1", True),
    ],
)
def test_transactional_is_read_from_the_parse_tree(sql: str, transactional: bool) -> None:
    [statement] = split(sql)
    assert statement.transactional is transactional


def test_keywords_in_comments_and_strings_do_not_change_classification() -> None:
    sql = (
        "-- CREATE INDEX CONCURRENTLY would be non-transactional\n"
        "select 'vacuum full; create database x';\n"
        "/* concurrently */ create index ix on t (a);\n"
    )
    assert [s.transactional for s in split(sql)] == [True, True]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ('CREATE INDEX CONCURRENTLY "ix_cards_due" ON "public"."flashcards" (due_at)',
         ("public", "ix_cards_due")),
        ("create unique index concurrently ix_u on t (a)", ("public", "ix_u")),
        ('create index concurrently "Ix" on "app"."T" (a)', ("app", "Ix")),
        ("create index ix on t (a)", None),
        ("create index concurrently on t (a)", None),  # unnamed: the server picks the name
        ("drop index concurrently ix", None),
        ("select 1", None),
    ],
)
def test_is_concurrent_index_build(sql: str, expected: tuple[str, str] | None) -> None:
    [statement] = split(sql)
    assert is_concurrent_index_build(statement) == expected
    assert is_concurrent_index_build(statement.sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ('alter table "public"."cards" add constraint "fk" foreign key ("deck_id") '
         'references "public"."decks"("id")', ['"public"."cards"', '"public"."decks"']),
        ("create index ix on t (a)", ['"public"."t"']),
        ('drop table "app"."Old"', []),  # a drop names its objects as plain lists
        ("insert into a select * from b join app.c using (id)",
         ['"app"."c"', '"public"."a"', '"public"."b"']),
    ],
)
def test_referenced_relations(sql: str, expected: list[str]) -> None:
    assert referenced_relations(sql) == expected


def test_statement_is_frozen() -> None:
    statement = Statement("select 1", 1, True)
    with pytest.raises(AttributeError):
        statement.sql = "select 2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("begin", "BEGIN"),
        ("start transaction isolation level serializable", "START TRANSACTION"),
        ("commit", "COMMIT"),
        ("end", "COMMIT"),
        ("rollback", "ROLLBACK"),
        ("prepare transaction 'x'", "PREPARE TRANSACTION"),
        ("commit prepared 'x'", "COMMIT PREPARED"),
        ("savepoint s", None),  # stays inside the plan's transaction
        ("rollback to savepoint s", None),
        ("release savepoint s", None),
        ("alter table t add column c int", None),
    ],
)
def test_transaction_boundary(sql: str, expected: str | None) -> None:
    [statement] = split(sql)
    assert transaction_boundary(statement) == expected


def _recursive_walk(node: object) -> list[object]:
    """The walk as it was first written: every attribute, recursively (the reference)."""
    from pglast import ast

    if isinstance(node, ast.Node):
        found = [node]
        for attr in node:
            found.extend(_recursive_walk(getattr(node, attr)))
        return found
    if isinstance(node, tuple | list):
        return [n for item in node for n in _recursive_walk(item)]
    return []


WALKED = """\
SELECT set_config('search_path', 'x', false) FROM t WHERE a IN (SELECT f(b) FROM u);
WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT now() FROM d;
CREATE TABLE c (id int DEFAULT nextval('s') CHECK (id > g(1)), p int REFERENCES q (id));
ALTER TABLE c ADD CONSTRAINT k CHECK (coalesce(p, 0) >= 0) NOT VALID;
CREATE VIEW v AS SELECT x.a FROM (SELECT a FROM t UNION SELECT a FROM u) x JOIN w USING (a);
CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'select $1';
UPDATE t SET a = CASE WHEN b THEN h(a) ELSE 0 END WHERE c = ANY (ARRAY[1, 2]);
"""


def test_walk_visits_the_same_nodes_in_the_same_order_as_the_recursive_walk() -> None:
    from deploy.statements import parse, walk

    for parsed in parse(WALKED):
        assert [id(n) for n in walk(parsed.node)] == [
            id(n) for n in _recursive_walk(parsed.node)]


def test_find_keeps_walk_order_and_reaches_a_set_config_buried_in_a_subquery() -> None:
    from pglast import ast

    from deploy.statements import find, parse, walk

    parsed = parse(WALKED)
    for p in parsed:
        for types in (ast.FuncCall, (ast.RangeVar, ast.TypeName), ast.DeleteStmt):
            assert find(p.node, types) == [n for n in walk(p.node) if isinstance(n, types)]
    calls = find(parsed[0].node, ast.FuncCall)
    assert [c.funcname[-1].sval for c in calls] == ["set_config", "f"]
    assert [type(n).__name__ for n in find(parsed[1].node, (ast.DeleteStmt, ast.InsertStmt))
            ] == ["InsertStmt", "DeleteStmt"]
