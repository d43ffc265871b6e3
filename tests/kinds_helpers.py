"""Shared by the kinds/repairs tests: build two schemas, plan between them with the planner's
own proof (converge), and report either the proven SQL or the refusal."""

from __future__ import annotations

import psycopg2

from deploy import urls
from deploy.differ import diff
from deploy.errors import DeployError
from deploy.fingerprint import Exclusions, compare, describe, fingerprint
from deploy.proof import connected, converge, describe_url
from deploy.scratch import ScratchServer

EXCLUDE = Exclusions(schemas=("schema_deploy",), tables=("alembic_version",))


def run_sql(url, sql: str) -> None:  # noqa: ANN001
    """Run a script with autocommit (CREATE PUBLICATION etc. warn, never fail, here)."""
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if sql.strip():
                cur.execute(sql)
    finally:
        conn.close()


def plan(
    pg, a_sql: str, b_sql: str, exclude: Exclusions = EXCLUDE  # noqa: ANN001
) -> tuple[str | None, str | None, list[str]]:
    """Plan A -> B as `invoke plan` does (diff, then prove on a copy of A, with follow-ups).

    Returns (proven SQL or None, refusal text or None, keys whose description differs).
    """
    server = ScratchServer(pg.server.url("postgres"))
    try:
        base = server.create_database("base")
        run_sql(base, a_sql)
        desired = server.create_database("desired")
        run_sql(desired, b_sql)
        before, after = describe_url(base, exclude), describe_url(desired, exclude)
        changed = [d.key for d in compare(before, after)]
        assert (fingerprint(before) == fingerprint(after)) == (not changed)
        with connected(base) as source, connected(desired) as target:
            first = diff(source, target, exclude)
        try:
            sql = converge(server, first, desired, after, exclude, lambda _m: None)
        except DeployError as exc:
            return None, f"{exc.message}\n{exc.details or ''}", changed
        return sql, None, changed
    finally:
        server.close()


def describe_sql(pg, sql: str) -> dict[str, str]:  # noqa: ANN001
    """The description of a fresh database built from `sql`."""
    url = pg.new("kinds")
    run_sql(url, sql)
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        return describe(conn, EXCLUDE)
    finally:
        conn.close()
