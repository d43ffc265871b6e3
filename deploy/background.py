"""One call in its own thread, its answer (or its exception) handed back to the caller.

plan and check overlap server work with Python work (deploy/planner.py, deploy/desired.py,
deploy/reverse.py): while a thread waits on the scratch server it holds no Python lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`call` running in a thread started now; result() waits and returns its value, or
    raises its exception in the caller's thread."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as exc:  # noqa: BLE001 - re-raised by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the call to end, whatever it did."""
        self._thread.join()

    def result(self) -> T:
        """The call's return value, once it has finished (its exception re-raised)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
