"""Database URLs: one place that picks the driver and hides passwords."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from deploy.errors import DeployError

# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we install psycopg2, and Railway hands
# out postgres:// and postgresql:// URLs, so every URL is normalised here before use.
_DRIVER = "postgresql+psycopg2"
_ACCEPTED = {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"}


def parse_url(raw: str) -> URL:
    """Return `raw` as a SQLAlchemy URL using the psycopg2 driver, or raise DeployError."""
    text = (raw or "").strip()
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise DeployError(
            f"The database URL {mask(text)!r} is not a valid URL ({_reason(exc)}). "
            "Use the form postgresql://USER:PASSWORD@HOST:PORT/DBNAME, for example the "
            "DATABASE_PUBLIC_URL from Railway's Postgres service."
        ) from None
    if url.drivername not in _ACCEPTED:
        raise DeployError(
            f"The database URL {mask(text)!r} uses the scheme {url.drivername!r}; only PostgreSQL "
            "URLs are supported (postgresql://USER:PASSWORD@HOST:PORT/DBNAME)."
        )
    if not url.database:
        raise DeployError(
            f"The database URL {mask(text)!r} names no database. Add it after the last slash: "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME."
        )
    return url.set(drivername=_DRIVER)


def sqlalchemy_url(url: URL | str) -> str:
    """Return a URL string SQLAlchemy's create_engine accepts, password included."""
    parsed = parse_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=False)


def psycopg2_dsn(url: URL | str) -> dict[str, object]:
    """Return keyword arguments for psycopg2.connect (query options such as sslmode kept)."""
    parsed = parse_url(url) if isinstance(url, str) else url
    kwargs: dict[str, object] = {"dbname": parsed.database}
    if parsed.username:
        kwargs["user"] = parsed.username
    if parsed.password is not None:
        kwargs["password"] = parsed.password
    if parsed.host:
        kwargs["host"] = parsed.host
    if parsed.port:
        kwargs["port"] = parsed.port
    for key, value in parsed.query.items():
        kwargs[key] = value if isinstance(value, str) else value[-1]
    return kwargs


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def mask(text: object) -> str:
    """Return `text` with the password of every URL in it replaced by ***."""
    if isinstance(text, URL):
        return text.render_as_string(hide_password=True)
    return _PASSWORD_IN_URL.sub(r"\1***\3", str(text))


def describe(url: URL | str) -> str:
    """Return a short, password-free name for a database: host:port/dbname."""
    try:
        parsed = parse_url(url) if isinstance(url, str) else url
    except DeployError:
        return mask(url)
    host = parsed.host or str(parsed.query.get("host", "local socket"))
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}/{parsed.database}"


def _reason(exc: Exception) -> str:
    return mask(str(exc)).rstrip(".")
