"""desired.build sends the models' compiled DDL as one script: the schema it builds must be
exactly create_all's, and whatever the script cannot do falls back to create_all."""

from __future__ import annotations

import enum

import psycopg2
import pytest
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.schema import DDL, CreateSchema

from deploy import cache, desired, urls
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.fingerprint import describe, fingerprint
from tests.conftest import REPO


class Mood(enum.Enum):
    happy = "happy"
    sad = "sad"


def rich_metadata() -> MetaData:
    """Models with every kind of DDL create_all emits: enums, sequences, identity, comments,
    expression and partial indexes, FK cycles (use_alter), listener DDL, `%` and `\\`."""
    md = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_label)s",
                                     "ck": "ck_%(table_name)s_%(constraint_name)s"})
    mood = Enum(Mood, name="mood")
    event.listen(md, "before_create", CreateSchema("extra", if_not_exists=True))
    order_seq = Sequence("order_number_seq", start=1000, increment=5)
    Table(
        "person", md,
        Column("id", BigInteger, Identity(always=True, start=10), primary_key=True),
        Column("email", String(200), nullable=False, comment="100% unique \\ per 'person'"),
        Column("mood", mood, server_default="happy"),
        Column("tags", ARRAY(Text)),
        Column("data", JSONB, server_default=text("'{}'::jsonb")),
        Column("ratio", Numeric(5, 2), server_default=text("'50.5'")),
        Column("label", String, server_default="50% off \\ today"),
        Column("email_lower", String, Computed("lower(email)", persisted=True)),
        Column("best_friend_id", BigInteger, ForeignKey("person.id", ondelete="SET NULL")),
        Column("team_id", Integer, ForeignKey("team.id", use_alter=True, name="person_team_fk")),
        CheckConstraint("email LIKE '%@%'", name="email_at"),
        Index("person_lower_email", func.lower(Column("email")), unique=True),
        Index("person_active", "mood", postgresql_where=text("mood = 'happy'")),
        comment="People; 100% of them",
    )
    Table(
        "team", md,
        Column("id", Integer, primary_key=True),
        Column("lead_id", BigInteger, ForeignKey("person.id", use_alter=True,
                                                 name="team_lead_fk")),
        Column("name", String(50), nullable=False, unique=True),
        Column("mood", mood),
    )
    Table(
        "orders", md,
        Column("number", Integer, order_seq, server_default=order_seq.next_value(),
               primary_key=True),
        Column("uid", UUID(as_uuid=True), server_default=text("gen_random_uuid()")),
        Column("person_id", BigInteger, nullable=False),
        Column("team_id", Integer, nullable=False),
        Column("placed", DateTime(timezone=True), server_default=func.now()),
        ForeignKeyConstraint(["person_id"], ["person.id"], deferrable=True,
                             initially="DEFERRED"),
        ForeignKeyConstraint(["team_id"], ["team.id"]),
        UniqueConstraint("person_id", "placed"),
        schema=None,
    )
    side = Table("side", md, Column("id", Integer, primary_key=True), Column("v", Text),
                 schema="extra")
    # Listener DDL, with a `%` (DDL's own formatting wants `%%`) and a $$ body.
    event.listen(side, "after_create", DDL(
        "CREATE FUNCTION extra.pct(x text) RETURNS boolean LANGUAGE sql AS "
        "$$ SELECT x LIKE '%%x%%' $$"))
    event.listen(side, "after_create", DDL(
        "COMMENT ON TABLE %(fullname)s IS 'made by a listener -- 5%%'"))
    return md


def _schema(metadata: MetaData, extensions: tuple[str, ...] = ()) -> desired.DesiredSchema:
    return desired.DesiredSchema(metadata, extensions, ())


def _fingerprint(url: str) -> str:
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        return fingerprint(describe(conn))
    finally:
        conn.close()


def _no_create_all(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("build fell back to create_all")

    monkeypatch.setattr(desired, "_build_with_create_all", refuse)


@pytest.mark.parametrize("models", ["app", "rich"])
def test_one_script_builds_what_create_all_builds(pg, monkeypatch, models):
    if models == "app":
        schema = desired.load_desired(load_config(REPO))
    else:
        schema = _schema(rich_metadata(), ("pgcrypto",))
    reference = pg.new("create_all")
    desired._build_with_create_all(schema, reference)
    scripted = pg.new("script")
    with monkeypatch.context() as patched:
        _no_create_all(patched)
        desired.build(schema, scripted)
    assert _fingerprint(scripted) == _fingerprint(reference)


def test_percent_and_backslash_reach_the_server_unescaped(pg, monkeypatch):
    _no_create_all(monkeypatch)
    url = pg.new("pct")
    desired.build(_schema(rich_metadata(), ("pgcrypto",)), url)
    rows = pg.query(url, """
        SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_person_email_at'
        UNION ALL SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
                  JOIN pg_attribute ON attrelid = adrelid AND attnum = adnum
                  WHERE adrelid = 'person'::regclass AND attname = 'label'
        UNION ALL SELECT col_description('person'::regclass, 2)
        UNION ALL SELECT obj_description('extra.side'::regclass, 'pg_class')
        UNION ALL SELECT prosrc FROM pg_proc WHERE proname = 'pct'""")
    assert [r[0] for r in rows] == [
        "CHECK (((email)::text ~~ '%@%'::text))",
        "'50% off \\ today'::character varying",
        "100% unique \\ per 'person'",
        "made by a listener -- 5%",
        " SELECT x LIKE '%x%' ",
    ]


def test_the_cache_key_and_the_build_share_one_compilation(pg, monkeypatch):
    import sqlalchemy

    schema = _schema(rich_metadata(), ("pgcrypto",))
    statements = cache.compiled_models(schema, 15)
    assert statements == list(schema.compiled[15].statements)

    def no_second_compile(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the models were compiled twice")

    monkeypatch.setattr(sqlalchemy, "create_mock_engine", no_second_compile)
    _no_create_all(monkeypatch)
    desired.build(schema, pg.new("shared"))
    assert cache.compiled_models(schema, 15) == statements


def test_listener_insert_falls_back_to_create_all(pg):
    md = MetaData()
    kind = Table("kind", md, Column("id", Integer, primary_key=True), Column("name", String))
    event.listen(kind, "after_create",
                 lambda target, connection, **_kw: connection.execute(
                     target.insert(), [{"id": 1, "name": "a%b"}]))
    schema = _schema(md)
    assert not desired.compile_models(schema, 15).plain
    url = pg.new("insert")
    desired.build(schema, url)
    assert pg.query(url, "SELECT id, name FROM kind") == [(1, "a%b")]


def test_listener_that_queries_falls_back_to_create_all(pg):
    md = MetaData()
    table = Table("t", md, Column("id", Integer, primary_key=True))

    def make_view(target, connection, **_kw):
        # Needs a live connection: the mock engine returns no result.
        count = connection.execute(text("SELECT count(*) FROM t")).scalar()
        connection.execute(DDL(f"CREATE VIEW v AS SELECT {int(count)} AS n"))

    event.listen(table, "after_create", make_view)
    url = pg.new("query")
    desired.build(_schema(md), url)
    assert pg.query(url, "SELECT n FROM v") == [(0,)]


def test_rejected_ddl_names_the_failing_statement(pg):
    md = MetaData()
    Table("fine", md, Column("id", Integer, primary_key=True))
    Table("bad", md, Column("id", Integer, primary_key=True),
          CheckConstraint("no_such_column > 0", name="bad_check"))
    url = pg.new("rejected")
    with pytest.raises(DeployError) as raised:
        desired.build(_schema(md), url)
    assert raised.value.message.startswith("PostgreSQL rejected the models' DDL: ")
    assert "no_such_column" in raised.value.message
    assert "(the failing statement is shown below)" in raised.value.message
    assert "CREATE TABLE bad" in raised.value.details
    assert "CREATE TABLE fine" not in raised.value.details
    # Nothing of the failed build stays behind.
    assert pg.query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
