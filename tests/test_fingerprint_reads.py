"""How describe() reads a schema: few round trips, the session left as it was found.

`apply` describes the live schema on every deploy and again inside each plan's transaction,
holding the plan's locks: the read must be one statement, not one per object kind (a remote
database pays a network round trip for each), and must not leave settings behind.
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from deploy.fingerprint import Exclusions, describe, fingerprint, split_key

EXCLUDE = Exclusions(schemas=("schema_deploy",), tables=("alembic_version",))
SCHEMA = """
create table t (id int primary key, a text default 'x', b int);
comment on table t is 'tee';
comment on column t.a is 'ay';
create index t_b on t (b);
create view v as select id, a from t;
create statistics t_st on a, b from t;
create table alembic_version (version_num text);
"""


class _Counting(psycopg2.extensions.connection):
    """A real connection that remembers the statements its cursors send."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def cursor(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        cur = super().cursor(*args, **kwargs)
        sent = self.sent

        class _Cursor:
            def __getattr__(self, name: str):  # noqa: ANN204
                return getattr(cur, name)

            def __enter__(self):  # noqa: ANN204
                return self

            def __exit__(self, *exc: object) -> None:
                cur.close()

            def execute(self, query, params=None):  # noqa: ANN001, ANN202
                sent.append(str(query))
                return cur.execute(query, params)

        return _Cursor()


def _database(pg) -> str:  # noqa: ANN001
    url = pg.new("reads")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
    conn.close()
    return url


def test_describe_reads_every_kind_in_one_statement(pg) -> None:  # noqa: ANN001
    url = _database(pg)
    conn = psycopg2.connect(url, connection_factory=_Counting)
    try:
        described = describe(conn, EXCLUDE)
        # settings + probes, the one read, the restore (the old reader sent 37 statements)
        assert len(conn.sent) <= 3, conn.sent
    finally:
        conn.close()
    assert described["relation public.t"].endswith('comment="tee"')
    assert described["column public.t.a"] == "type=text default='x'::text comment=\"ay\""
    assert "index public.t.t_b" in described
    assert "relation public.v" in described
    assert "statistics public.t_st" in described  # an optional kind its probe found
    assert not any("alembic_version" in key for key in described)


def test_describe_leaves_search_path_and_jit_as_they_were(pg) -> None:  # noqa: ANN001
    url = _database(pg)
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET search_path = public, pg_catalog; SET jit = on")
        first = fingerprint(describe(conn, EXCLUDE))
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('search_path'), current_setting('jit')")
            assert cur.fetchone() == ("public, pg_catalog", "on")
        # JIT forced on for every statement does not change the answer (describe turns it off)
        with conn.cursor() as cur:
            cur.execute("SET jit_above_cost = 0")
        assert fingerprint(describe(conn, EXCLUDE)) == first
    finally:
        conn.close()


def test_describe_inside_a_transaction_sees_it_and_leaves_it_open(pg) -> None:  # noqa: ANN001
    url = _database(pg)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE t ADD COLUMN c int")
        assert "column public.t.c" in describe(conn, EXCLUDE)
        assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        conn.rollback()
        assert "column public.t.c" not in describe(conn, EXCLUDE)
    finally:
        conn.close()


def test_split_key_with_and_without_quotes() -> None:
    assert split_key("public.t.c") == ["public", "t", "c"]
    assert split_key("public.f(integer, public.mood)") == ["public", "f"]
    assert split_key('"my.schema"."T"."c"') == ["my.schema", "T", "c"]
    assert split_key('public."a""b"') == ["public", 'a"b']
    assert split_key("et") == ["et"]


def test_kinds_skipped_when_absent_are_read_when_present(pg) -> None:  # noqa: ANN001
    """Each kind describe() leaves out when its probe finds nothing is read when one exists,
    also next to look-alikes its probe must not count (row types, FK triggers, _RETURN)."""
    url = pg.new("probes")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("""
            create table p (id int primary key);
            create table c (id int primary key, p int references p);
            create view cv as select id from c;
            create type pair as (a int, b int);
            create sequence s;
            create function f() returns trigger language plpgsql as $$begin return new; end$$;
            create trigger tr before insert on c for each row execute function f();
            create rule r as on insert to p do also notify p;
            create collation co (provider = libc, locale = 'C');
        """)
    try:
        described = describe(conn, EXCLUDE)
    finally:
        conn.close()
    for key in ("type public.pair", "sequence public.s", "function public.f()",
                "trigger public.c.tr", "rule public.p.r", "collation public.co"):
        assert key in described, key
