"""Where a task writes: stdout (text or the JSON document), stderr (progress and errors).

What a command says is built as a Document and rendered by deploy/output.py; this module
only owns the streams, colour on a TTY and the error paragraph. Progress goes to stderr so
that `--format json` keeps stdout machine-readable. Everything printed passes through
`urls.mask`: no password ever reaches a log.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

from deploy import cli, urls
from deploy.errors import DeployError

# Rendering lives in deploy.output; these names stay importable from here for older callers.
from deploy.output import (  # noqa: F401
    JSON_VERSION,
    append_step_summary,
    error_data,
    fenced,
    json_document,
)

FORMATS = ("text", "json")

_WRITING = threading.Lock()

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


class Output:
    """Where a task writes: text or JSON on stdout, progress on stderr."""

    def __init__(self, fmt: str = "text", out: TextIO | None = None, err: TextIO | None = None):
        if fmt not in FORMATS:
            raise DeployError(f"Unknown --format {fmt!r}: use one of {', '.join(FORMATS)}.")
        self.format = fmt
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._started = time.monotonic()

    def colour(self, text: str, name: str) -> str:
        """`text` in colour `name` when stdout is a terminal (and NO_COLOR is unset)."""
        if not _is_tty(self.out) or os.environ.get("NO_COLOR"):
            return text
        return f"\033[{_COLOURS[name]}m{text}\033[0m"

    def progress(self, message: str) -> None:
        """One progress line on stderr, with the seconds since the task started."""
        elapsed = time.monotonic() - self._started
        self._write(self.err, f"[{elapsed:5.1f}s] {urls.mask(message)}")

    def text(self, message: str = "") -> None:
        """A line of human text on stdout (text format only)."""
        if self.format == "text":
            self._write(self.out, urls.mask(message))

    def json(self, command: str, payload: dict[str, Any]) -> None:
        """The task's one JSON document on stdout (json format only)."""
        if self.format == "json":
            self._write(self.out, json_document(command, payload))

    def error(self, command: str, exc: DeployError) -> None:
        """Report a DeployError: a paragraph on stderr (and a JSON document in json mode)."""
        message = urls.mask(exc.message)
        label = self.colour("error:", "red") if _is_tty(self.err) else "error:"
        self._write(self.err, f"{label} {message}")
        if exc.details:
            self._write(self.err, urls.mask(exc.details.rstrip()))
        self.json(command, error_data(exc))

    def _write(self, stream: TextIO, line: str) -> None:
        """Print a line; a reader that went away (`| head -1`) silences the stream instead
        of ending the task, so the task still finishes and keeps its exit code."""
        try:
            # One write per line, under a lock: plan and check report progress from more than
            # one thread, and print()'s separate writes of text and newline would interleave.
            with _WRITING:
                stream.write(line + "\n")
                stream.flush()
        except BrokenPipeError:
            cli.silence(stream)


def _is_tty(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()
