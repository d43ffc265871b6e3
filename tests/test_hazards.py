"""Hazard classification of plan SQL (parse tree + squawk); no database needed."""

from __future__ import annotations

import pytest

from deploy import hazards
from deploy.hazards import (
    BACKWARD_INCOMPATIBLE,
    BLOCKS_WRITES,
    DELETES_DATA,
    KINDS,
    SQUAWK_RULES,
    TABLE_REWRITE,
    Approval,
    Hazard,
    classify,
    unapproved,
)
from deploy.statements import StatementError

DD, TR, BW, BI = DELETES_DATA, TABLE_REWRITE, BLOCKS_WRITES, BACKWARD_INCOMPATIBLE

needs_squawk = pytest.mark.skipif(hazards.squawk._squawk_path() is None,
                                  reason="squawk not installed")


def texts(sql: str, *, use_squawk: bool = False) -> list[str]:
    return [h.text for h in classify(sql, use_squawk=use_squawk)]


# One statement against tables that already exist -> the exact hazard texts, in order.
SINGLE_STATEMENTS = [
    # --- DELETES_DATA (+ BACKWARD_INCOMPATIBLE where the old code may use the object)
    ('alter table "public"."users" drop column "legacy_score";',
     ['DELETES_DATA drop column "public"."users"."legacy_score"',
      'BACKWARD_INCOMPATIBLE drop column "public"."users"."legacy_score"']),
    ("alter table users drop column if exists legacy_score cascade;",
     ['DELETES_DATA drop column "public"."users"."legacy_score" cascade',
      'BACKWARD_INCOMPATIBLE drop column "public"."users"."legacy_score" cascade']),
    ('drop table "public"."old_cards";',
     ['DELETES_DATA drop table "public"."old_cards"',
      'BACKWARD_INCOMPATIBLE drop table "public"."old_cards"']),
    ('drop table if exists "app"."a", b;',
     ['DELETES_DATA drop table "app"."a"',
      'DELETES_DATA drop table "public"."b"',
      'BACKWARD_INCOMPATIBLE drop table "app"."a"',
      'BACKWARD_INCOMPATIBLE drop table "public"."b"']),
    ('drop schema "reporting" cascade;',
     ['DELETES_DATA drop schema "reporting" cascade',
      'BACKWARD_INCOMPATIBLE drop schema "reporting" cascade']),
    ('drop type "public"."mood";', ['DELETES_DATA drop type "public"."mood"']),
    ("drop domain positive_int;", ['DELETES_DATA drop domain "public"."positive_int"']),
    ('drop materialized view "public"."deck_totals";',
     ['DELETES_DATA drop materialized view "public"."deck_totals"',
      'BACKWARD_INCOMPATIBLE drop materialized view "public"."deck_totals"']),
    ('drop sequence "public"."ticket_no";', ['DELETES_DATA drop sequence "public"."ticket_no"']),
    ('truncate "public"."events";', ['DELETES_DATA truncate "public"."events"']),
    ("truncate a, app.b cascade;",
     ['DELETES_DATA truncate "app"."b" cascade', 'DELETES_DATA truncate "public"."a" cascade']),
    ('delete from "public"."sessions";', ['DELETES_DATA delete from "public"."sessions"']),
    ("delete from sessions where expires_at < now();",
     ['DELETES_DATA delete from "public"."sessions"']),
    # --- UNVERIFIED (default-deny: a backfill and damage look alike)
    ("update users set xp = 0 where xp is null;",
     ['UNVERIFIED update "public"."users": update users set xp = 0 where xp is null']),
    # --- TABLE_REWRITE
    ('alter table "public"."decks" alter column "title" set data type character varying(500) '
     'using "title"::character varying(500);',
     ['TABLE_REWRITE alter column "public"."decks"."title" type varchar(500)',
      'BACKWARD_INCOMPATIBLE alter column "public"."decks"."title" type varchar(500)']),
    ('alter table "public"."cards" alter column "id" type bigint;',
     ['TABLE_REWRITE alter column "public"."cards"."id" type bigint',
      'BACKWARD_INCOMPATIBLE alter column "public"."cards"."id" type bigint']),
    ('alter table "public"."users" alter column "mood" set data type "public"."mood" '
     'using "mood"::text::"public"."mood";',
     ['TABLE_REWRITE alter column "public"."users"."mood" type "public"."mood"',
      'BACKWARD_INCOMPATIBLE alter column "public"."users"."mood" type "public"."mood"']),
    ('alter table "public"."cards" add column "uid" uuid default gen_random_uuid();',
     ['TABLE_REWRITE add column "public"."cards"."uid" with volatile default gen_random_uuid()']),
    ('alter table "public"."cards" add column "uid" uuid not null default uuid_generate_v4();',
     ['TABLE_REWRITE add column "public"."cards"."uid" with volatile default uuid_generate_v4()']),
    ("alter table cards add column jitter float8 default random();",
     ['TABLE_REWRITE add column "public"."cards"."jitter" with volatile default random()']),
    ("alter table cards add column seen timestamptz default clock_timestamp();",
     ['TABLE_REWRITE add column "public"."cards"."seen" with volatile default clock_timestamp()']),
    ("alter table cards add column score int default my_schema.compute();",
     ['TABLE_REWRITE add column "public"."cards"."score" with volatile default '
      "my_schema.compute()"]),
    ("alter table cards add column n bigint default nextval('cards_n_seq'::regclass);",
     ['TABLE_REWRITE add column "public"."cards"."n" with volatile default '
      "nextval(CAST('cards_n_seq' AS regclass))"]),
    ("alter table cards add column n bigserial;",
     ['TABLE_REWRITE add column "public"."cards"."n" bigserial']),
    ("alter table cards add column n int generated always as identity;",
     ['TABLE_REWRITE add column "public"."cards"."n" generated as identity']),
    ("alter table cards add column total int generated always as (a + b) stored;",
     ['TABLE_REWRITE add column "public"."cards"."total" generated always as stored']),
    ('alter table "public"."events" set tablespace "archive";',
     ['TABLE_REWRITE alter table "public"."events" set tablespace "archive"']),
    ("alter table events set unlogged;",  # and a crash then empties it: DELETES_DATA
     ['DELETES_DATA alter table "public"."events" set unlogged',
      'TABLE_REWRITE alter table "public"."events" set unlogged']),
    ("vacuum full events;", ['TABLE_REWRITE vacuum full "public"."events"']),
    ("vacuum full;", ["TABLE_REWRITE vacuum full"]),
    ("cluster events using events_pkey;", ['TABLE_REWRITE cluster "public"."events"']),
    # --- BLOCKS_WRITES
    ("CREATE INDEX ix_cards_due ON public.flashcards USING btree (due_at);",
     ['BLOCKS_WRITES create index "public"."ix_cards_due" on "public"."flashcards" '
      "without CONCURRENTLY"]),
    ("CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email);",
     ['BLOCKS_WRITES create unique index "public"."users_email_key" on "public"."users" '
      "without CONCURRENTLY"]),
    ("create index on cards (deck_id, lower(front));",
     ['BLOCKS_WRITES create index ("deck_id", expression) on "public"."cards" '
      "without CONCURRENTLY"]),
    ('alter table "public"."t" add constraint "fk_x" foreign key ("deck_id") '
     'references "public"."decks"("id");',
     ['BLOCKS_WRITES add foreign key "fk_x" on "public"."t" without NOT VALID']),
    ("alter table t add foreign key (deck_id) references decks (id);",
     ['BLOCKS_WRITES add foreign key ("deck_id") on "public"."t" without NOT VALID']),
    ('alter table "public"."cards" add constraint "ck_ease" CHECK ((ease > 0));',
     ['BLOCKS_WRITES add check "ck_ease" on "public"."cards" without NOT VALID']),
    ('alter table "public"."users" add constraint "users_email_key" UNIQUE (email);',
     ['BLOCKS_WRITES add unique "users_email_key" on "public"."users" without USING INDEX']),
    ('alter table "public"."users" add constraint "users_pkey" PRIMARY KEY (id);',
     ['BLOCKS_WRITES add primary key "users_pkey" on "public"."users" without USING INDEX']),
    ("alter table bookings add constraint no_overlap "
     "exclude using gist (room with =, span with &&);",
     ['BLOCKS_WRITES add exclusion "no_overlap" on "public"."bookings"']),
    ("reindex table cards;", ['BLOCKS_WRITES reindex table "public"."cards" without CONCURRENTLY']),
    ('alter table "public"."users" alter column "email" set not null;',
     ['BLOCKS_WRITES alter column "public"."users"."email" set not null',
      'BACKWARD_INCOMPATIBLE alter column "public"."users"."email" set not null']),
    ("alter table cards add column code text unique;",
     ['BLOCKS_WRITES add column "public"."cards"."code" with unique constraint']),
    # --- BACKWARD_INCOMPATIBLE
    ('alter table "public"."users" add column "xp" integer not null;',
     ['BACKWARD_INCOMPATIBLE add column "public"."users"."xp" not null without default']),
    ('alter table "public"."users" rename column "name" to "display_name";',
     ['BACKWARD_INCOMPATIBLE rename column "public"."users"."name" to "display_name"']),
    ('alter table "public"."cards" rename to "flashcards";',
     ['BACKWARD_INCOMPATIBLE rename table "public"."cards" to "flashcards"']),
    ('alter view "public"."deck_stats" rename to "deck_summary";',
     ['BACKWARD_INCOMPATIBLE rename view "public"."deck_stats" to "deck_summary"']),
    ('alter type "public"."mood" rename to "mood__old_version_to_be_dropped";',
     ['BACKWARD_INCOMPATIBLE rename type "public"."mood" to "mood__old_version_to_be_dropped"']),
    ("alter type mood rename value 'meh' to 'neutral';",
     ["BACKWARD_INCOMPATIBLE rename value 'meh' of type \"public\".\"mood\" to 'neutral'"]),
    ('alter table "public"."t" rename constraint "a" to "b";',
     ['BACKWARD_INCOMPATIBLE rename constraint "public"."t"."a" to "b"']),
    ("alter function public.deck_count(integer) rename to count_decks;",
     ['BACKWARD_INCOMPATIBLE rename function "public"."deck_count"(integer) to "count_decks"']),
    ("alter schema app rename to app_v1;",
     ['BACKWARD_INCOMPATIBLE rename schema "app" to "app_v1"']),
    ("alter table cards set schema archive;",
     ['BACKWARD_INCOMPATIBLE move table "public"."cards" to schema "archive"']),
    ('drop view "public"."deck_stats";', ['BACKWARD_INCOMPATIBLE drop view "public"."deck_stats"']),
    ('drop function "public"."deck_count"(integer, text);',
     ['BACKWARD_INCOMPATIBLE drop function "public"."deck_count"(integer, text)']),
    ("drop function deck_count;", ['BACKWARD_INCOMPATIBLE drop function "public"."deck_count"']),
    ("drop extension pg_trgm;", ['BACKWARD_INCOMPATIBLE drop extension "pg_trgm"']),
    # --- quoting of awkward identifiers
    ('alter table "Odd ""Name""" drop column "Mixed Case";',
     ['DELETES_DATA drop column "public"."Odd ""Name"""."Mixed Case"',
      'BACKWARD_INCOMPATIBLE drop column "public"."Odd ""Name"""."Mixed Case"']),
]

# Statements that carry no hazard on their own.
HARMLESS = [
    'CREATE INDEX CONCURRENTLY ix_cards_due ON public.flashcards USING btree (due_at);',
    "reindex index concurrently ix_cards_due;",
    'alter table "public"."t" add constraint "fk_x" foreign key ("deck_id") '
    'references "public"."decks"("id") not valid;',
    'alter table "public"."t" validate constraint "fk_x";',
    'alter table "public"."cards" add constraint "ck" check ((ease > 0)) not valid;',
    'alter table "public"."users" add constraint "users_pkey" PRIMARY KEY '
    'using index "users_pkey";',
    'alter table "public"."users" add constraint "u" UNIQUE using index "u";',
    'alter table "public"."users" add column "bio" text;',
    'alter table "public"."users" add column "xp" integer not null default 0;',
    "alter table users add column created timestamptz not null default now();",
    "alter table users add column created2 timestamptz default CURRENT_TIMESTAMP;",
    "alter table users add column meta jsonb not null default '{}'::jsonb;",
    "alter table users add column day date default (now() at time zone 'utc')::date;",
    'alter table "public"."users" alter column "bio" drop not null;',
    'alter table "public"."users" alter column "xp" set default 10;',
    'alter table "public"."users" alter column "xp" drop default;',
    'alter table "public"."users" drop constraint "ck";',
    "alter type \"public\".\"mood\" add value 'ecstatic';",
    'create or replace view "public"."deck_stats" as  SELECT 1 AS one;',
    'create type "public"."mood" as enum (\'happy\', \'sad\');',
    "CREATE TRIGGER touch BEFORE UPDATE ON public.decks FOR EACH ROW "
    "EXECUTE FUNCTION public.touch_updated_at();",
    'drop trigger if exists "touch" on "public"."decks";',
    'drop index if exists "public"."ix_old";',
    "comment on column users.bio is 'Über mich';",
    "analyze users;",
    "vacuum users;",
    "select 1;",
    "select count(*) from users;",
]


@pytest.mark.parametrize(("sql", "expected"), SINGLE_STATEMENTS)
def test_parse_tree_rules(sql: str, expected: list[str]) -> None:
    assert texts(sql) == expected


@pytest.mark.parametrize("sql", HARMLESS)
def test_harmless_statements(sql: str) -> None:
    assert texts(sql) == []


@needs_squawk
@pytest.mark.parametrize(("sql", "expected"), SINGLE_STATEMENTS)
def test_squawk_adds_nothing_where_the_parse_tree_decided(sql: str, expected: list[str]) -> None:
    assert texts(sql, use_squawk=True) == expected


@needs_squawk
@pytest.mark.parametrize("sql", HARMLESS)
def test_squawk_does_not_flag_harmless_statements(sql: str) -> None:
    assert texts(sql, use_squawk=True) == []


CREATED_IN_PLAN = """\
create table "public"."deck_tags" (
    "id" bigint generated by default as identity not null,
    "deck_id" bigint not null,
    "tag" text
);
CREATE UNIQUE INDEX pk ON public.deck_tags USING btree (id);
CREATE INDEX ix_deck_tags_tag ON public.deck_tags USING btree (tag);
alter table "public"."deck_tags" add constraint "deck_tags_pkey" PRIMARY KEY using index pk;
alter table "public"."deck_tags" add constraint "fk_deck" FOREIGN KEY (deck_id) REFERENCES decks;
alter table "public"."deck_tags" add constraint "ck_tag" CHECK ((tag <> ''::text));
alter table "public"."deck_tags" add constraint "uq" UNIQUE (deck_id, tag);
alter table "public"."deck_tags" alter column "tag" set not null;
alter table "public"."deck_tags" add column "weight" integer not null;
alter table "public"."deck_tags" add column "uid" uuid default gen_random_uuid();
alter table "public"."deck_tags" alter column "weight" type bigint;
alter table "public"."deck_tags" rename column "tag" to "label";
alter table "public"."deck_tags" rename to "deck_labels";
create index ix_after_rename on deck_labels (label);
alter table "public"."decks" add column "archived" boolean;
update "public"."decks" set "archived" = false;
alter table "public"."decks" alter column "archived" set not null;
alter table "public"."decks" rename column "archived" to "is_archived";
alter table "public"."decks" add column "slug" character varying(20);
alter table "public"."decks" alter column "slug" type varchar(40) using "slug"::varchar(40);
alter table "public"."decks" alter column "slug" type text;
alter table "public"."decks" alter column "slug" type character varying(5);
alter table "public"."decks" drop column "slug";
create table scratch (a int);
drop table scratch;
create index ix_scratch on scratch (a);
alter type "public"."mood" rename to "mood__old_version_to_be_dropped";
create type "public"."mood" as enum ('happy', 'sad');
alter type "public"."mood" rename value 'sad' to 'blue';
drop type "public"."mood__old_version_to_be_dropped";
"""


def test_statements_on_objects_created_earlier_in_the_plan_are_exempt() -> None:
    assert [(h.line, h.text) for h in classify(CREATED_IN_PLAN, use_squawk=False)] == [
        # A backfill of a column this plan added still fires the table's triggers.
        (20, 'UNVERIFIED update "public"."decks": update "public"."decks" set "archived" = false'),
        # Shrinking a column added in this plan rewrites the (existing) table.
        (26, 'TABLE_REWRITE alter column "public"."decks"."slug" type varchar(5)'),
        # Created only *after* the drop: the index is on the old, pre-existing table.
        (30, 'BLOCKS_WRITES create index "public"."ix_scratch" on "public"."scratch" '
             "without CONCURRENTLY"),
        (31, 'BACKWARD_INCOMPATIBLE rename type "public"."mood" to '
             '"mood__old_version_to_be_dropped"'),
        (34, 'DELETES_DATA drop type "public"."mood__old_version_to_be_dropped"'),
    ]


@needs_squawk
def test_squawk_findings_on_objects_created_in_the_plan_are_dropped() -> None:
    assert classify(CREATED_IN_PLAN) == classify(CREATED_IN_PLAN, use_squawk=False)


def test_created_later_is_not_created_earlier() -> None:
    sql = "create index ix on t (a);\ncreate table t (a int);\n"
    assert texts(sql) == [
        'BLOCKS_WRITES create index "public"."ix" on "public"."t" without CONCURRENTLY'
    ]


def test_set_not_null_on_a_column_added_earlier_is_exempt_only_for_that_column() -> None:
    sql = (
        "alter table users add column a int;\n"
        "alter table users alter column a set not null;\n"
        "alter table users alter column b set not null;\n"
        "alter table other alter column a set not null;\n"
    )
    assert [(h.line, h.kind) for h in classify(sql, use_squawk=False)] == [
        (3, BW), (3, BI), (4, BW), (4, BI)
    ]


MIGRA_VIEW_AND_FUNCTION_CHANGES = """\
drop view if exists "public"."deck_stats";
drop function if exists "public"."deck_count"(integer);
drop function if exists "public"."retired"(integer);
drop view if exists "public"."retired_view";
drop view if exists "public"."rebuilt_with_cascade" cascade;
alter table "public"."decks" alter column "title" set data type text using "title"::text;
create or replace view "public"."deck_stats" as  SELECT decks.id FROM decks;
create or replace view "public"."rebuilt_with_cascade" as  SELECT 1;
CREATE OR REPLACE FUNCTION public.deck_count(d integer)
 RETURNS integer
 LANGUAGE sql
AS $function$ select 1; $function$;
CREATE OR REPLACE FUNCTION public.retired(d bigint)
 RETURNS integer
 LANGUAGE sql
AS $function$ select 1; $function$;
"""


def test_drop_then_recreate_of_views_and_functions_is_not_backward_incompatible() -> None:
    assert [(h.line, h.text) for h in classify(MIGRA_VIEW_AND_FUNCTION_CHANGES)] == [
        # Re-created with another signature: callers of (integer) break.
        (3, 'BACKWARD_INCOMPATIBLE drop function "public"."retired"(integer)'),
        (4, 'BACKWARD_INCOMPATIBLE drop view "public"."retired_view"'),
        (5, 'DELETES_DATA drop view "public"."rebuilt_with_cascade" cascade'),
        (5, 'BACKWARD_INCOMPATIBLE drop view "public"."rebuilt_with_cascade" cascade'),
        (6, 'TABLE_REWRITE alter column "public"."decks"."title" type text'),
        (6, 'BACKWARD_INCOMPATIBLE alter column "public"."decks"."title" type text'),
    ]


def test_recreated_before_the_drop_does_not_count() -> None:
    sql = "create or replace view v as select 1;\ndrop view v;\n"
    assert texts(sql) == ['BACKWARD_INCOMPATIBLE drop view "public"."v"']


PLAN = """\
-- plan: tags, due index, touch trigger
-- from: sha256:0000000000000000000000000000000000000000000000000000000000000000
-- to:   sha256:1111111111111111111111111111111111111111111111111111111111111111
-- postgres: 15
-- hazard: DELETES_DATA drop column "public"."users"."legacy_score"
-- approve: DELETES_DATA drop column "public"."users"."legacy_score" -- backfilled into xp

-- Ünïcödé kommentar: 東京 ✓
alter table "public"."users" drop column "legacy_score";

create table "public"."deck_tags" ("deck_id" bigint not null, "tag" text not null);

CREATE INDEX ix_deck_tags_tag ON public.deck_tags USING btree (tag);

CREATE INDEX CONCURRENTLY ix_cards_due ON public.flashcards USING btree (due_at);

/* schöne Grüße */ CREATE INDEX ix_cards_deck ON public.flashcards USING btree (deck_id);

CREATE OR REPLACE FUNCTION public.touch_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
    -- drop table "public"."users"; is only text in a body
    new.updated_at := now();
    return new;
end;
$function$
;

alter table "public"."deck_tags" add constraint "deck_tags_deck_id_fkey"
    FOREIGN KEY (deck_id) REFERENCES decks(id);

alter table "public"."flashcards" add constraint "flashcards_deck_id_fkey"
    FOREIGN KEY (deck_id) REFERENCES decks(id);

alter table "public"."decks" alter column "title" set data type character varying(500)
    using "title"::character varying(500);

alter domain "public"."positive_int" add constraint "positive" check (value > 0);
"""

PLAN_PARSE_TREE_HAZARDS = [
    (9, 'DELETES_DATA drop column "public"."users"."legacy_score"'),
    (9, 'BACKWARD_INCOMPATIBLE drop column "public"."users"."legacy_score"'),
    (17, 'BLOCKS_WRITES create index "public"."ix_cards_deck" on "public"."flashcards" '
         "without CONCURRENTLY"),
    (34, 'BLOCKS_WRITES add foreign key "flashcards_deck_id_fkey" on "public"."flashcards" '
         "without NOT VALID"),
    (37, 'TABLE_REWRITE alter column "public"."decks"."title" type varchar(500)'),
    (37, 'BACKWARD_INCOMPATIBLE alter column "public"."decks"."title" type varchar(500)'),
    (40, 'BLOCKS_WRITES add check "positive" to domain "public"."positive_int" '
         "without NOT VALID"),
]


def test_full_plan_without_squawk() -> None:
    found = classify(PLAN, use_squawk=False)
    assert [(h.line, h.text) for h in found] == PLAN_PARSE_TREE_HAZARDS
    assert all(h.text.startswith(h.kind + " ") for h in found)


@needs_squawk
def test_full_plan_with_squawk_adds_only_what_the_parse_tree_cannot_judge() -> None:
    found = classify(PLAN + "revoke select on users from app;\n")
    assert [(h.line, h.text) for h in found] == PLAN_PARSE_TREE_HAZARDS + [
        (41, "BACKWARD_INCOMPATIBLE ban-revoke on revoke select on users from app"),
    ]


@needs_squawk
def test_squawk_finding_is_placed_on_its_statement_after_non_ascii_text() -> None:
    sql = (
        "-- 東京 ✓ üñí\n"
        "select 'ééé'; /* ööö */ revoke select on users from app;\n"
        "select 1;\n"
    )
    [hazard] = classify(sql)
    assert hazard.line == 2
    assert hazard.text == "BACKWARD_INCOMPATIBLE ban-revoke on revoke select on users from app"


@needs_squawk
def test_squawk_summary_drops_comments_and_newlines_and_is_cut() -> None:
    sql = (
        "revoke select, insert -- a comment with approve: in it\n"
        "  on a_rather_long_table_name_that_goes_on, another_rather_long_table_name\n"
        "  from a_role_with_a_long_name;\n"
    )
    [hazard] = classify(sql)
    assert "\n" not in hazard.text and "comment" not in hazard.text
    assert hazard.text.endswith("...")
    assert len(hazard.text) < 140


@needs_squawk
def test_squawk_opt_in_rules_are_mapped() -> None:
    sql = "alter table users enable row level security;\nrevoke select on users from app;\n"
    assert texts(sql, use_squawk=True) == [
        "BACKWARD_INCOMPATIBLE ban-alter-row-level-security on "
        "alter table users enable row level security",
        "BACKWARD_INCOMPATIBLE ban-revoke on revoke select on users from app",
    ]
    # On a table this plan creates, nothing old can break.
    assert texts("create table users (a int);\n" + sql, use_squawk=True) == [
        "BACKWARD_INCOMPATIBLE ban-revoke on revoke select on users from app",
    ]


def test_without_squawk_installed_classification_still_works(monkeypatch) -> None:
    monkeypatch.setattr(hazards.squawk, "_squawk_path", lambda: None)
    assert hazards.run_squawk("select 1;") is None
    assert classify(PLAN) == classify(PLAN, use_squawk=False)


def test_broken_squawk_is_skipped(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "squawk"
    fake.write_text("#!/bin/sh\necho 'not json'; exit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(hazards.squawk, "_squawk_path", lambda: str(fake))
    assert hazards.run_squawk("select 1;") is None
    assert classify(PLAN) == classify(PLAN, use_squawk=False)


def test_squawk_rule_table_uses_only_known_kinds() -> None:
    assert SQUAWK_RULES
    for rule, kinds in SQUAWK_RULES.items():
        assert kinds and set(kinds) <= set(KINDS), rule
    for style_rule in ("prefer-robust-stmts", "prefer-text-field", "prefer-bigint-over-int",
                       "prefer-identity", "prefer-timestamp-tz", "ban-char-field",
                       "transaction-nesting", "require-timeout-settings"):
        assert style_rule not in SQUAWK_RULES


def test_order_is_by_line_then_kind_and_each_text_appears_once() -> None:
    sql = (
        "alter table a add column x int not null;\n"
        "alter table b drop column y;\n"
        "delete from c;\n"
        "delete from c where id = 1;\n"
        "alter table b drop column y;\n"
    )
    found = classify(sql, use_squawk=False)
    assert [(h.line, h.kind) for h in found] == [(1, BI), (2, DD), (2, BI), (3, DD)]
    assert len({h.text for h in found}) == len(found)


def test_classification_is_deterministic() -> None:
    assert classify(PLAN) == classify(PLAN)
    assert classify(CREATED_IN_PLAN) == classify(CREATED_IN_PLAN)


@pytest.mark.parametrize(
    "sql",
    [s for s, _ in SINGLE_STATEMENTS] + [PLAN, CREATED_IN_PLAN, MIGRA_VIEW_AND_FUNCTION_CHANGES],
)
def test_hazard_texts_fit_a_header_line(sql: str) -> None:
    for hazard in classify(sql):
        assert hazard.kind in KINDS
        assert hazard.text.startswith(hazard.kind + " ")
        assert "\n" not in hazard.text and "\r" not in hazard.text
        assert "approve" not in hazard.text.lower()
        assert " -- " not in hazard.text
        assert hazard.text == hazard.text.strip()


def test_control_characters_in_identifiers_stay_on_one_line() -> None:
    [dd, bi] = classify('alter table "a\nb" drop column "c";', use_squawk=False)
    assert dd.text == 'DELETES_DATA drop column "public"."a b"."c"'
    assert "\n" not in bi.text


def test_syntax_errors_propagate() -> None:
    with pytest.raises(StatementError):
        classify("alter table users drop colum x;")


def test_unapproved() -> None:
    found = classify(PLAN, use_squawk=False)
    approvals = [
        Approval('DELETES_DATA drop column "public"."users"."legacy_score"', "backfilled", 6),
        Approval('  BACKWARD_INCOMPATIBLE drop column "public"."users"."legacy_score"  ', None, 7),
        Approval("TABLE_REWRITE something else entirely", None, 8),
    ]
    left = unapproved(found, approvals)
    assert [h.line for h in left] == [17, 34, 37, 37, 40]
    assert unapproved(found, [Approval(h.text, None, 1) for h in found]) == []
    assert unapproved([], approvals) == []
    assert unapproved(found, []) == found


def test_unapproved_compares_whole_texts_only() -> None:
    hazard = Hazard(DD, 'DELETES_DATA drop table "public"."t"', 3)
    assert unapproved([hazard], [Approval('DELETES_DATA drop table "public"."t2"', None, 1)]) == [
        hazard
    ]
    assert unapproved([hazard], [Approval('drop table "public"."t"', None, 1)]) == [hazard]
    padded = Approval(' DELETES_DATA drop table "public"."t"\t', None, 1)
    assert unapproved([hazard], [padded]) == []


def test_if_not_exists_does_not_prove_the_table_is_new() -> None:
    sql = "create table if not exists t (a int);\ncreate index ix on t (a);\n"
    assert texts(sql) == [
        'BLOCKS_WRITES create index "public"."ix" on "public"."t" without CONCURRENTLY'
    ]


@needs_squawk
def test_run_squawk_with_rules_keeps_only_their_findings_and_the_fields_read() -> None:
    sql = "CREATE TABLE t (id int);\nCREATE INDEX ix ON t (id);\nALTER TABLE t DROP COLUMN id;\n"
    every = hazards.run_squawk(sql)
    wanted = {"require-concurrent-index-creation", "ban-drop-column"}
    slim = hazards.run_squawk(sql, wanted)
    assert slim == [{k: f.get(k) for k in ("rule_name", "line", "column")}
                    for f in every if f["rule_name"] in wanted]
    assert {f["rule_name"] for f in slim} == wanted


def test_squawk_runs_beside_the_parse_and_is_done_when_a_parse_error_is_raised(
        monkeypatch, tmp_path) -> None:
    marker = tmp_path / "ran"
    fake = tmp_path / "squawk"
    fake.write_text(f"#!/bin/sh\ncat >/dev/null; sleep 0.3; touch {marker}; echo '[]'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(hazards.squawk, "_squawk_path", lambda: str(fake))
    with pytest.raises(StatementError):
        classify("create table t (a int);\nselec 1;\n")
    assert marker.exists()  # waited for: no squawk process outlives the error
    marker.unlink()
    assert classify(PLAN) == classify(PLAN, use_squawk=False)
    assert marker.exists()
