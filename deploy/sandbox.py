"""`sandbox`: a throwaway local database to try `apply`, `status` and `serve` against.

It is the scratch machinery `plan` uses (a local initdb cluster, or a container), kept
running with one empty database until Ctrl-C (or SIGTERM); then everything is deleted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TextIO

from deploy import urls
from deploy.config import Config
from deploy.errors import DeployError
from deploy.scratch import open_scratch

Progress = Callable[[str], None]
# `url` would create a database on a server the user already runs: not a throwaway.
SANDBOX_PROVIDERS = ("auto", "local", "docker")


def run_sandbox(
    config: Config,
    out: TextIO,
    *,
    scratch: str | None = None,
    progress: Progress = lambda _msg: None,
    stop: threading.Event | None = None,
) -> None:
    """Start a throwaway PostgreSQL of the configured major, print its DATABASE_URL and how
    to use it, and block until Ctrl-C, SIGTERM or `stop` is set; then delete it all."""
    kind = scratch or ("local" if config.scratch == "url" else config.scratch)
    if kind not in SANDBOX_PROVIDERS:
        raise DeployError(
            f"invoke sandbox --scratch {kind!r}: use auto, local or docker (a sandbox is a "
            "throwaway server the command starts and deletes)."
        )
    stop = stop or threading.Event()
    previous = _stop_on_signals(stop)
    try:
        with open_scratch(kind, config.postgres, image=config.docker_image,
                          progress=progress) as server:
            url = server.create_database("sandbox")
            # Printed whole on purpose (not masked): it is the throwaway server's URL, which
            # the user must copy; a docker sandbox's random password dies with the container.
            plain = "postgresql://" + urls.sqlalchemy_url(url).partition("://")[2]
            print(
                f"A throwaway PostgreSQL {server.major} ({server.kind}) is running, with one "
                "empty database. In another terminal, in this project:\n\n"
                f"  export DATABASE_URL='{plain}'\n"
                "  invoke apply     # bring it to the head of schema/plans\n"
                "  invoke status    # where it stands\n"
                "  invoke serve     # /healthz and /status on http://localhost:8080\n\n"
                "Press Ctrl-C here to stop it: the server and its data are deleted.",
                file=out,
                flush=True,
            )
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            progress("stopping the sandbox and deleting its data")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_on_signals(stop: threading.Event) -> dict[int, object]:
    """Make Ctrl-C and SIGTERM stop the sandbox cleanly (even where the shell started it
    with SIGINT ignored); returns the previous handlers. Only the main thread may do this."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        signum: signal.signal(signum, lambda _signum, _frame: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
