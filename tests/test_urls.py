"""URLs: a password never reaches output, even one that is not percent-encoded."""

from __future__ import annotations

import pytest

from deploy import urls
from deploy.errors import DeployError
from tests.conftest import run_invoke

SECRET_PARTS = ("s3cr", "t-pw", "pa55", "w0rd")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr@t-pw@127.0.0.1:1/app",  # @ in the password
        "postgresql://app:s3cr/t-pw@127.0.0.1:1/app",  # /
        "postgresql://app:s3cr?t-pw@127.0.0.1:1/app",  # ?
        "postgresql://app:s3cr t-pw@127.0.0.1:1/app",  # a space
    ],
    ids=["at", "slash", "question-mark", "space"],
)
def test_unencoded_password_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(DeployError) as refused:
        urls.parse_url(url)
    assert "percent-encoded" in refused.value.message
    assert not any(part in refused.value.message for part in SECRET_PARTS)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr%40t-pw@db.internal:5432/app?sslmode=require",
        "postgres://app:pa55w0rd@db.internal/app",
        "postgresql://postgres@/app?host=/tmp/socket&port=5432",
        "postgresql://app:pa55w0rd@db.internal/app?options=-c%20search_path%3Da@b",
    ],
    ids=["encoded-at", "postgres-scheme", "unix-socket", "at-in-query"],
)
def test_well_formed_urls_are_accepted(url: str) -> None:
    parsed = urls.parse_url(url)
    assert parsed.startswith("postgresql://")
    assert not any(part in urls.describe(parsed) for part in SECRET_PARTS)


def test_mask_hides_everything_up_to_the_last_at_sign() -> None:
    text = ("to postgresql://app:s3cr@t-pw@db:5432/app and postgresql://u:pa55w0rd@h/d; "
            "password=w0rd")
    masked = urls.mask(text)
    assert not any(part in masked for part in SECRET_PARTS)
    assert "postgresql://app:***@db:5432/app" in masked and "postgresql://u:***@h/d" in masked


@pytest.mark.parametrize("command", ["apply", "status", "plan"])
def test_cli_never_prints_a_piece_of_an_unencoded_password(project, command) -> None:
    target = "postgresql://app:s3cr@t-pw@127.0.0.1:1/app"
    args = ["--target", target] + (["--scratch", "local"] if command == "plan" else ["--wait", "1"])
    done = run_invoke(project, command, *args)
    assert done.returncode == 1
    assert "percent-encoded" in done.stderr
    assert not any(part in done.stdout + done.stderr for part in SECRET_PARTS)


# libpq percent-decodes URL query keys: each of these hands it the password "SECRET".
ENCODED_KEYS = ("passwor%64", "%70assword", "%70%61%73%73%77%6f%72%64", "sslpassword")


@pytest.mark.parametrize("key", ENCODED_KEYS)
def test_mask_hides_passwords_given_as_encoded_query_keys(key: str) -> None:
    text = (f"'postgresql://u@h:5432/db?sslmode=require&{key}=SECRET&application_name=x' "
            f"and postgresql://u@h/db?{key}=SECRET")
    masked = urls.mask(text)
    assert "SECRET" not in masked
    assert "sslmode=require" in masked and "application_name=x" in masked


def test_mask_hides_quoted_keyword_passwords_with_escaped_quotes() -> None:
    masked = urls.mask(r"host=h password = 'SEC\'RET' dbname=d PGPASSWORD=SECRET")
    assert "SEC" not in masked and "RET" not in masked
    assert "dbname=d" in masked


def test_libpq_really_reads_an_encoded_key_as_the_password() -> None:
    from psycopg2.extensions import parse_dsn

    assert parse_dsn("postgresql://u@h/db?passwor%64=SECRET")["password"] == "SECRET"


@pytest.mark.parametrize(
    "target",
    [
        "mysql://app@127.0.0.1:1/app?passwor%64=SECRET",  # wrong scheme
        "postgresql://app@127.0.0.1:1/?passwor%64=SECRET",  # no database name
        "postgresql://app@127.0.0.1:x/app?passwor%64=SECRET",  # port is not a number
        "postgresql://app@127.0.0.1:1/app?passwor%64=SECRET&bogus=1",  # libpq refuses a key
        "postgresql://app@127.0.0.1:1/app?passwor%64=SECRET",  # connection refused
    ],
    ids=["scheme", "no-dbname", "bad-port", "bad-option", "refused"],
)
@pytest.mark.parametrize("command", ["apply", "status", "plan"])
def test_cli_never_prints_an_encoded_key_password(project, command: str, target: str) -> None:
    wait = () if command == "plan" else ("--wait", "0")  # plan --target tries for 10 s
    for fmt in ("text",) if command == "plan" else ("text", "json"):
        done = run_invoke(project, command, "--target", target, *wait, "--format", fmt)
        assert done.returncode == 1, done.stderr
        assert "SECRET" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


def test_check_target_never_prints_an_encoded_key_password(project) -> None:
    """check reports a bad --target as a finding, in its own summary line too."""
    done = run_invoke(project, "check", "--scratch", "local", "--target",
                      "postgresql://app@127.0.0.1:1/?passwor%64=SECRET")
    assert done.returncode == 1
    assert "names no database" in done.stdout + done.stderr
    assert "SECRET" not in done.stdout + done.stderr


def test_wrong_encoded_key_password_on_a_real_server_is_not_printed(project, password_pg) -> None:
    target = (f"postgresql://{password_pg.user}@127.0.0.1:{password_pg.port}/postgres"
              "?passwor%64=WRONGSECRET")
    done = run_invoke(project, "status", "--target", target, "--wait", "0")
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr
    assert "WRONGSECRET" not in done.stdout + done.stderr
