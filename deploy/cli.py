"""Command-line values, checked here so that a typo is a one-paragraph error, not a traceback.

invoke converts a flag to the type of its default before the task runs, and its ValueError
is a traceback; so numeric flags take string defaults and are converted by these functions.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import TextIO

from deploy.errors import DeployError


def seconds(flag: str, raw: object) -> float:
    """`raw` as a finite, non-negative number of seconds (2.5 is fine), else a DeployError."""
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DeployError(
            f"--{flag} {text!r} is not a number of seconds. Give a number such as 30 or 2.5 "
            "(0 means: try once)."
        )
    return value


def count(flag: str, raw: object, minimum: int = 1) -> int:
    """`raw` as a whole number >= `minimum`, else a DeployError."""
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise DeployError(f"--{flag} {text!r} is not a whole number of at least {minimum}.")
    return int(text)


def port(raw: object) -> int | None:
    """`raw` as a TCP port (1-65535); None for empty or 0 (use $PORT, else the default)."""
    text = str(raw).strip()
    if text in ("", "0"):
        return None
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise DeployError(
            f"--port {text!r} is not a TCP port: give a number from 1 to 65535, or leave it out "
            "to use $PORT (Railway sets it) or 8080."
        )
    return int(text)


def silence(stream: TextIO) -> None:
    """Point a stream whose reader went away (`| head`) at /dev/null, so later writes and the
    interpreter's final flush do not raise BrokenPipeError again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
