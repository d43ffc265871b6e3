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
