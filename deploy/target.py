"""Connections to a target (live) database: retry with backoff, clear errors, no passwords."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Callable

import psycopg2
from psycopg2.extensions import parse_dsn

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
# A connection attempt slower than this gets a progress line (slow DNS, a dropped SYN).
_SLOW_ATTEMPT = 1.5

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
    wait_option: str | None = "--wait",
) -> psycopg2.extensions.connection:
    """Connect to `url`, retrying with exponential backoff for up to `wait` seconds.

    `wait_option` is the flag the advice may suggest for waiting longer (None: the caller
    has no such flag, e.g. `serve`).

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
    where = urls.describe(url)
    while True:
        attempt += 1
        try:
            return _attempt(kwargs, where, attempt, progress)
        except psycopg2.OperationalError as exc:
            # libpq's messages span lines with a tab-indented hint: one line of sentences.
            lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
            message = urls.mask(" ".join(_sentence(x) for x in lines[:-1]) + " " + lines[-1]
                                if lines else type(exc).__name__).strip()
            permanent = any(p in message for p in _PERMANENT)
            if permanent or time.monotonic() + delay > deadline:
                raise DeployError(
                    _connect_advice(url, message, attempt, permanent, wait_option)
                ) from None
            if progress:
                progress(
                    f"cannot reach {where} yet ({_first_line(lines, 100)}"
                    f"); retrying in {delay:.1f}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except psycopg2.ProgrammingError as exc:
            raise DeployError(
                f"Cannot connect to {where}: {_sentence(urls.mask(str(exc).strip()))} "
                "Check the options in the database URL."
            ) from None


def _attempt(
    kwargs: dict[str, object], where: str, attempt: int, progress: Callable[[str], None] | None
) -> psycopg2.extensions.connection:
    """One connection attempt; says so on `progress` when it is slow (DNS, a dropped SYN)."""
    timer = None
    if progress:
        seconds = kwargs.get("connect_timeout")
        timer = threading.Timer(
            _SLOW_ATTEMPT,
            progress,
            [f"still connecting to {where} (attempt {attempt}, gives up after {seconds}s)"],
        )
        timer.daemon = True
        timer.start()
    try:
        return psycopg2.connect(**kwargs)  # type: ignore[arg-type]
    finally:
        if timer:
            timer.cancel()


def _first_line(lines: list[str], width: int) -> str:
    """libpq's error without its hint, shortened at a word boundary, password masked."""
    return textwrap.shorten(urls.mask(lines[0] if lines else "no answer"), width, placeholder=" …")


def _sentence(text: str) -> str:
    """`text` ending in one full stop (libpq's messages may end in '?' or '.' already)."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _connect_advice(
    url: str, message: str, attempts: int, permanent: bool, wait_option: str | None = "--wait"
) -> str:
    where = urls.describe(url)
    if "password authentication failed" in message or "no password supplied" in message:
        hint = (
            "The user name or password is wrong: copy the URL again from the database's "
            "settings."
        )
    elif "does not exist" in message:
        hint = "The database or role in the URL does not exist on that server."
    elif "could not translate host name" in message:
        hint = (
            "The host name does not resolve from here: check it for typos; Railway's private "
            "host names (*.railway.internal) only resolve inside Railway, so from outside use "
            "DATABASE_PUBLIC_URL."
        )
    else:
        longer = f", or wait longer with {wait_option}" if wait_option else ""
        hint = (
            "Check the host and port, that the server is running and reachable from here "
            f"(from outside Railway use DATABASE_PUBLIC_URL){longer}."
        )
    tries = "" if permanent else f" after {attempts} attempt{'s' if attempts > 1 else ''}"
    return f"Cannot connect to {where}{tries}: {_sentence(message)} {hint}"


def privilege_hint(exc: BaseException, url: str, history_schema: str) -> str:
    """For a 'permission denied' error (SQLSTATE 42501): the GRANT that would fix it, run
    as the database owner; empty for any other error."""
    if getattr(exc, "pgcode", None) != "42501":
        return ""
    message = str(exc)
    params = parse_dsn(urls.parse_url(url))
    user = _ident(str(params.get("user") or "<deploy user>"))
    database = _ident(str(params.get("dbname") or "<database>"))
    schema = _ident(history_schema)
    if f"schema {history_schema}" in message:
        grant = (f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {user}; GRANT SELECT, INSERT, "
                 f"UPDATE ON ALL TABLES IN SCHEMA {schema} TO {user}; GRANT USAGE ON ALL "
                 f"SEQUENCES IN SCHEMA {schema} TO {user};")
        why = f"the tool records every apply in the schema {schema}"
    elif "permission denied for database" in message:
        grant = f"GRANT CREATE ON DATABASE {database} TO {user};"
        why = f"the first apply creates the history schema {schema}"
    elif "permission denied for schema" in message:
        name = message.split("permission denied for schema", 1)[1].split()[0]
        grant = f"GRANT USAGE, CREATE ON SCHEMA {_ident(name)} TO {user};"
        why = "the plans create and alter objects in that schema"
    else:
        grant = ("GRANT the missing privilege, or connect as the user that owns the schema's "
                 "objects (Railway's DATABASE_URL user owns them)")
        why = "plans alter objects the connecting user does not own"
    return (f" The database user {user} lacks a privilege ({why}). As the database owner, run: "
            f"{grant}")


def _ident(name: str) -> str:
    """`name` as an SQL identifier, quoted only when it has to be."""
    if name.replace("_", "a").isalnum() and name == name.lower() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'


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
