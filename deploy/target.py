"""Connections to a target (live) database: retry with backoff, clear errors, no passwords."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psycopg2

from deploy import urls
from deploy.errors import DeployError

# Errors that waiting will not fix: retrying them only delays the message.
_PERMANENT = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "no pg_hba.conf entry",
    "role ",
    "invalid dsn",
    "invalid connection option",
    "sslmode value",
)

# Railway sets this next to a pooled DATABASE_URL when connection pooling is on.
UNPOOLED_VARIABLE = "DATABASE_UNPOOLED_URL"


def resolve_target(explicit: str | None) -> str:
    """The target URL: `--target`, else DATABASE_UNPOOLED_URL, else DATABASE_URL.

    The direct URL wins when Railway's pooling sets it: a transaction pooler may reject
    the session options the tool connects with, and holds no session. A clear error when
    none is set.
    """
    raw = explicit or os.environ.get(UNPOOLED_VARIABLE) or os.environ.get("DATABASE_URL")
    if not raw:
        raise DeployError(
            "No target database: pass --target postgresql://USER:PASSWORD@HOST:PORT/DBNAME or set "
            "DATABASE_URL (on Railway it is set for you; from a laptop use DATABASE_PUBLIC_URL)."
        )
    return urls.parse_url(raw)


def resolve_apply_target(explicit: str | None, progress: Callable[[str], None]) -> str:
    """apply's target: `--target`, else DATABASE_UNPOOLED_URL, else DATABASE_URL.

    Schema changes and the deploy lock need one server session from start to end, which a
    transaction pooler does not give: the direct URL wins whenever it is set.
    """
    direct = os.environ.get(UNPOOLED_VARIABLE)
    if not explicit and direct:
        progress(f"using {UNPOOLED_VARIABLE} (a direct connection, not the connection pooler)")
        return urls.parse_url(direct)
    return resolve_target(explicit)


def transaction_pooled(conn: psycopg2.extensions.connection, url: str) -> bool:
    """True when `conn` reaches the server through a transaction-mode pooler (PgBouncer).

    Probe: a second client connection holds a transaction open while the first asks for its
    server session again. Direct connections always have two different, stable sessions;
    through a transaction pooler the second client borrows the first one's idle session
    (PgBouncer hands out the most recently used), or the first gets another one back.
    """
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        first = _backend_pid(conn)
        other = connect(url, wait=5.0, application_name="schema-deploy-probe")
        try:
            with other.cursor() as cur:  # not autocommit: its transaction pins a session
                cur.execute("SELECT pg_backend_pid()")
                second = cur.fetchone()[0]
                again = _backend_pid(conn)
            other.rollback()
        finally:
            other.close()
    finally:
        conn.autocommit = autocommit
    return second == first or again != first


def _backend_pid(conn: psycopg2.extensions.connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def pooled_error(url: str) -> DeployError:
    """The refusal for a transaction-pooled target: which variable to use instead."""
    return DeployError(
        f"{urls.describe(url)} goes through a transaction-mode connection pooler (PgBouncer): "
        "each transaction may run in another server session, so the deploy lock would protect "
        "nothing and a plan's session settings would not hold. Nothing was applied. Give apply "
        f"the direct connection: set {UNPOOLED_VARIABLE} (on Railway, add the variable "
        f"{UNPOOLED_VARIABLE}=${{{{Postgres.{UNPOOLED_VARIABLE}}}}} to the service) or pass "
        "--target with the database's unpooled URL."
    )


def connect(
    url: str,
    *,
    wait: float = 30.0,
    read_only: bool = False,
    application_name: str = "schema-deploy",
    progress: Callable[[str], None] | None = None,
) -> psycopg2.extensions.connection:
    """Connect to `url`, retrying with exponential backoff for up to `wait` seconds.

    Wrong passwords, unknown databases and malformed options fail at once; unreachable
    hosts are retried. With `read_only`, every transaction on the connection is read-only.
    """
    kwargs = urls.psycopg2_dsn(url)
    kwargs.setdefault("connect_timeout", max(2, min(10, int(wait) or 2)))
    kwargs["application_name"] = application_name
    if read_only:
        kwargs["options"] = f"{kwargs.get('options', '')} -c default_transaction_read_only=on"
    deadline = time.monotonic() + max(wait, 0)
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            return psycopg2.connect(**kwargs)  # type: ignore[arg-type]
        except psycopg2.OperationalError as exc:
            message = urls.mask(str(exc).strip().replace("\n", " "))
            permanent = any(p in message for p in _PERMANENT)
            if permanent or time.monotonic() + delay > deadline:
                raise DeployError(_connect_advice(url, message, attempt, permanent)) from None
            if progress:
                progress(
                    f"waiting for {urls.describe(url)} ({message[:80]}); retry in {delay:.1f}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except psycopg2.ProgrammingError as exc:
            raise DeployError(
                f"Cannot connect to {urls.describe(url)}: {urls.mask(str(exc).strip())}. "
                "Check the options in the database URL."
            ) from None


def _connect_advice(url: str, message: str, attempts: int, permanent: bool) -> str:
    where = urls.describe(url)
    if "password authentication failed" in message or "no password supplied" in message:
        hint = (
            "The user name or password is wrong: copy the URL again from the database's "
            "settings."
        )
    elif "does not exist" in message:
        hint = "The database or role in the URL does not exist on that server."
    else:
        hint = (
            "Check the host and port, that the server is running and reachable from here "
            "(from outside Railway use DATABASE_PUBLIC_URL), or wait longer with --wait."
        )
    tries = "" if permanent else f" after {attempts} attempt{'s' if attempts > 1 else ''}"
    return f"Cannot connect to {where}{tries}: {message}. {hint}"


def sqlalchemy_engine(url: str, read_only: bool = False):  # noqa: ANN201 - sqlalchemy Engine
    """A one-connection SQLAlchemy engine for migra to inspect `url` (read-only if asked)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args: dict[str, object] = {"application_name": "schema-deploy", "connect_timeout": 10}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(urls.sqlalchemy_url(url), poolclass=NullPool, connect_args=connect_args)


def server_major(conn: psycopg2.extensions.connection) -> int:
    """The server's major version (15 for 15.x)."""
    return conn.server_version // 10000
