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


def resolve_target(explicit: str | None) -> str:
    """The target URL: `--target`, else DATABASE_URL; a clear error when neither is set."""
    raw = explicit or os.environ.get("DATABASE_URL")
    if not raw:
        raise DeployError(
            "No target database: pass --target postgresql://USER:PASSWORD@HOST:PORT/DBNAME or set "
            "DATABASE_URL (on Railway it is set for you; from a laptop use DATABASE_PUBLIC_URL)."
        )
    return urls.parse_url(raw)


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


# Roles named by policies, grants (ACLs) and default privileges of user objects.
_REFERENCED_ROLES = """
WITH grantees AS (
    SELECT unnest(p.polroles) AS role FROM pg_policy p
    UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c WHERE c.relacl IS NOT NULL
    UNION SELECT (aclexplode(a.attacl)).grantee FROM pg_attribute a WHERE a.attacl IS NOT NULL
    UNION SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n WHERE n.nspacl IS NOT NULL
    UNION SELECT (aclexplode(p.proacl)).grantee FROM pg_proc p WHERE p.proacl IS NOT NULL
    UNION SELECT (aclexplode(t.typacl)).grantee FROM pg_type t WHERE t.typacl IS NOT NULL
    UNION SELECT (aclexplode(d.defaclacl)).grantee FROM pg_default_acl d
)
SELECT r.rolname FROM pg_roles r JOIN grantees g ON g.role = r.oid
WHERE r.rolname !~ '^pg_' AND r.oid <> 10 ORDER BY 1
"""


def referenced_roles(conn: psycopg2.extensions.connection) -> list[str]:
    """Roles the target's policies and grants name (besides built-in ones and the bootstrap
    superuser), so a scratch server can be given them before building the schema."""
    with conn.cursor() as cur:
        cur.execute(_REFERENCED_ROLES)
        names = [row[0] for row in cur.fetchall()]
    conn.rollback()
    return names
