"""Database URLs: one place that picks the driver and hides passwords.

URLs are kept as libpq URIs (`postgresql://…`), which psycopg2 connects to directly;
libpq itself parses and validates them. SQLAlchemy is not imported here, so `apply`
(which never needs SQLAlchemy) starts fast.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg2
from psycopg2.extensions import parse_dsn

from deploy.errors import DeployError

# Railway hands out postgres:// and postgresql://; SQLAlchemy 2.1 maps postgresql:// to
# psycopg 3, which we do not install, so SQLAlchemy always gets an explicit psycopg2 URL.
_ACCEPTED = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")
_SQLALCHEMY_DRIVER = "postgresql+psycopg2"


def parse_url(raw: object) -> str:
    """Return `raw` as a libpq URI (postgresql://…), or raise DeployError saying what is wrong.

    Accepts strings and SQLAlchemy URL objects; query options such as sslmode are kept.
    """
    if hasattr(raw, "render_as_string"):  # a SQLAlchemy URL from the scratch factory
        raw = raw.render_as_string(hide_password=False)  # type: ignore[attr-defined]
    text = str(raw or "").strip()
    scheme, separator, rest = text.partition("://")
    if not separator:
        raise DeployError(
            f"The database URL {mask(text)!r} is not a URL. Use the form "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME, for example the DATABASE_PUBLIC_URL "
            "from Railway's Postgres service."
        )
    if scheme.lower() not in _ACCEPTED:
        raise DeployError(
            f"The database URL {mask(text)!r} uses the scheme {scheme!r}; only PostgreSQL URLs "
            "are supported (postgresql://USER:PASSWORD@HOST:PORT/DBNAME)."
        )
    if _needs_encoding(rest):
        # Not even a masked copy: where the password ends is exactly what is unclear here.
        raise DeployError(
            "The database URL has a user name or password with characters that must be "
            "percent-encoded (@ as %40, / as %2F, ? as %3F, # as %23, a space as %20). "
            "Encode them, e.g. python3 -c 'import sys, urllib.parse; "
            "print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'the password', or copy the URL "
            "again from the database's settings (Railway's are already encoded)."
        )
    uri = "postgresql://" + rest
    try:
        params = parse_dsn(uri)
    except psycopg2.ProgrammingError:
        # libpq's reason may quote a piece of the URL, password included: leave it out.
        raise DeployError(
            f"The database URL {mask(text)!r} is not a valid PostgreSQL URL. Use the form "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME; percent-encode special characters "
            "in the password."
        ) from None
    port = params.get("port", "5432")
    if not all(part.isdigit() for part in port.split(",")):
        raise DeployError(
            f"The database URL {mask(text)!r} has the port {port!r}; a port is a number "
            "(PostgreSQL's default is 5432)."
        )
    if not params.get("dbname"):
        raise DeployError(
            f"The database URL {mask(text)!r} names no database. Add it after the last slash: "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME."
        )
    return uri


def _needs_encoding(rest: str) -> bool:
    """True when the part after :// has an unencoded @, /, ? or whitespace in its user info.

    libpq would split such a URL elsewhere than the user meant, and then print a piece of
    the password as a host name in its error messages.
    """
    if any(ch.isspace() for ch in rest):
        return True
    before_query = rest.split("?", 1)[0]
    if before_query.count("@") > 1:
        return True
    if "@" in before_query and "/" in before_query.split("@", 1)[0]:
        return True
    authority = rest.split("/", 1)[0]
    return "?" in authority.split("@", 1)[0] and "@" in rest.split("?", 1)[1]


def psycopg2_dsn(url: object) -> dict[str, object]:
    """Keyword arguments for psycopg2.connect (extra keywords may be added by the caller)."""
    return {"dsn": parse_url(url)}


def sqlalchemy_url(url: object) -> str:
    """The same database as a SQLAlchemy URL string with the psycopg2 driver."""
    return _SQLALCHEMY_DRIVER + "://" + parse_url(url).partition("://")[2]


def database_name(url: object) -> str:
    """The database a URL names."""
    return str(parse_dsn(parse_url(url)).get("dbname", ""))


# Greedy to the last @ of the URL: a password may itself contain @ (which parse_url refuses,
# but a message may still quote what the user typed).
_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)\S*@")
# A `key=value` option, in a URL query (`?key=value&…`) or a keyword/value conninfo string
# (`key = 'value'`). libpq percent-decodes URL query keys, so `?passwor%64=…` is a password
# too: keys are decoded before they are judged. A quoted value may hold escaped quotes.
_OPTION = re.compile(
    r"(?P<lead>^|[\s?&;,(\[{])(?P<key>[A-Za-z0-9_.%-]+)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&]*)"
)


def _is_secret_key(key: str) -> bool:
    """True for libpq options that carry a secret (password, sslpassword), however encoded."""
    return "password" in unquote(key).lower()


def _mask_option(match: re.Match[str]) -> str:
    if not _is_secret_key(match.group("key")):
        return match.group(0)
    return match.group("lead") + match.group("key") + match.group("eq") + "***"


def mask(text: object) -> str:
    """`text` with the password of every URL (and every password=… option) replaced by ***.

    Options count however libpq would read them: `?password=`, `?passwor%64=`,
    `?sslpassword=`, `password = '…'` in a keyword/value string.
    """
    if hasattr(text, "render_as_string"):
        text = text.render_as_string(hide_password=True)  # type: ignore[attr-defined]
    masked = _PASSWORD_IN_URL.sub(r"\1***@", str(text))
    return _OPTION.sub(_mask_option, masked)


def describe(url: object) -> str:
    """A short, password-free name for a database: host:port/dbname."""
    try:
        params = parse_dsn(parse_url(url))
    except (DeployError, psycopg2.ProgrammingError):
        return mask(url)
    host = params.get("host") or "local socket"
    port = f":{params['port']}" if params.get("port") else ""
    return f"{host}{port}/{params.get('dbname', '')}"
