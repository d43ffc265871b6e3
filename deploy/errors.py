"""Exit codes shared by every task, and the one error type the engine raises."""

from __future__ import annotations

OK = 0
ERROR = 1
PENDING = 2
UNAPPROVED_HAZARD = 3
DRIFT = 4


class DeployError(Exception):
    """A problem the user can fix. The message is one paragraph that says what to do.

    `exit_code` is one of the codes above; `details` holds extra lines (SQL, object lists)
    that the reporter may show under the message; `line` is the line of the file the
    message names, when there is one (for annotations).
    """

    def __init__(
        self, message: str, exit_code: int = ERROR, details: str = "", line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = details
        self.line = line
