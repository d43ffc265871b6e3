"""squawk, a Postgres migration linter, as a second opinion.

Its findings are mapped onto the hazard kinds and only count where the parse-tree rules have
no opinion of their own (a rule module marks the kinds it decided).
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from deploy.hazards.model import (
    BACKWARD_INCOMPATIBLE,
    BLOCKS_WRITES,
    DELETES_DATA,
    TABLE_REWRITE,
    Findings,
    Hazard,
    Result,
)
from deploy.hazards.names import clean, summary
from deploy.statements import ParsedStatement

log = logging.getLogger(__name__)

# squawk rule -> hazard kinds. A rule that is not listed is ignored: style advice
# (prefer-robust-stmts, prefer-text-field, prefer-bigint-*, prefer-identity,
# prefer-timestamp-tz, ban-char-field, require-enum-value-ordering, identifier-too-long,
# ban-create-domain-with-constraint), transaction shape the applier controls itself
# (transaction-nesting, ban-concurrent-index-creation-in-transaction,
# ban-uncommitted-transaction, require-timeout-settings, require-lock-timeout,
# require-statement-timeout: apply sets both timeouts), brief catalog-only locks whose
# queueing risk is apply's lock_timeout's job (require-concurrent-index-deletion,
# require-concurrent-partition-detach), and changes the old code survives during the
# deploy window (ban-drop-not-null, ban-drop-constraint, ban-drop-index, ban-drop-trigger,
# ban-add-enum-value, ban-replace-view-function, ban-set-default, ...).
SQUAWK_RULES: dict[str, tuple[str, ...]] = {
    # Lock held for a whole index build or table scan.
    "require-concurrent-index-creation": (BLOCKS_WRITES,),
    "require-concurrent-reindex": (BLOCKS_WRITES,),
    "constraint-missing-not-valid": (BLOCKS_WRITES,),
    "adding-foreign-key-constraint": (BLOCKS_WRITES,),
    "disallowed-unique-constraint": (BLOCKS_WRITES,),
    "adding-serial-primary-key-field": (BLOCKS_WRITES,),
    "adding-not-nullable-field": (BLOCKS_WRITES,),  # squawk 2.x: SET NOT NULL's scan
    "ban-alter-domain-with-add-constraint": (BLOCKS_WRITES,),  # validates every column using it
    # The table is rewritten under ACCESS EXCLUSIVE.
    "adding-field-with-default": (TABLE_REWRITE,),  # volatile default or stored generated
    "ban-alter-generated-expression": (TABLE_REWRITE,),
    "changing-column-type": (TABLE_REWRITE, BACKWARD_INCOMPATIBLE),
    # Data is gone.
    "ban-drop-column": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-table": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-schema": (DELETES_DATA, BACKWARD_INCOMPATIBLE),
    "ban-drop-type": (DELETES_DATA,),
    "ban-drop-sequence": (DELETES_DATA,),
    "ban-drop-database": (DELETES_DATA,),
    "ban-truncate-cascade": (DELETES_DATA,),
    # The old application version, still serving, may use what changes.
    "adding-required-field": (BACKWARD_INCOMPATIBLE,),  # ADD COLUMN NOT NULL, no default
    "renaming-column": (BACKWARD_INCOMPATIBLE,),
    "renaming-table": (BACKWARD_INCOMPATIBLE,),
    "renaming-object": (BACKWARD_INCOMPATIBLE,),
    "ban-set-schema": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-view": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-function": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-domain": (BACKWARD_INCOMPATIBLE,),
    "ban-drop-extension": (BACKWARD_INCOMPATIBLE,),
    "ban-revoke": (BACKWARD_INCOMPATIBLE,),
    "ban-alter-row-level-security": (BACKWARD_INCOMPATIBLE,),  # old role may see no rows
}

# Mapped rules squawk leaves off unless asked.
_SQUAWK_OPT_IN = ("ban-revoke", "ban-alter-row-level-security")


@functools.cache
def _squawk_path() -> str | None:
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("squawk")


def run_squawk(sql: str, rules: Collection[str] | None = None) -> list[dict] | None:
    """squawk's JSON findings for the SQL, or None when squawk is not installed or fails.
    With `rules`, only findings of those rules, each with rule_name, line and column only."""
    return _collect(_launch(sql), sql, rules)


def _launch(sql: str) -> _Launched | None:
    """squawk started on `sql` (it runs while the caller goes on), or None without squawk."""
    path = _squawk_path()
    if path is None:
        return None
    command = [path, "--reporter", "json", "--stdin-filepath", "plan.sql"]
    return _Launched(command + ["--include", ",".join(_SQUAWK_OPT_IN)], sql, command)


def _collect(launched: _Launched | None, sql: str,
             rules: Collection[str] | None) -> list[dict] | None:
    """The findings of a launched squawk (waiting for it), as run_squawk gives them."""
    if launched is None:
        return None
    done = launched.wait()
    if done is not None and done.returncode == 2 and b"invalid rule name" in done.stderr:
        done = _run(launched.fallback, sql)  # an older squawk 2.x without those rules
    if done is None:
        return None
    # squawk reports every statement a 3000-statement plan holds (~8000 findings, ~10 MB as
    # dicts): parsed from the bytes (no decoded copy) and slimmed while being read.
    hook = None if rules is None else _slim_finding(rules)
    try:
        findings = json.loads(done.stdout or b"[]", object_hook=hook)
    except ValueError:
        findings = None
    if rules is not None and isinstance(findings, list):
        findings = [f for f in findings if f is not None]
    if done.returncode not in (0, 1) or not isinstance(findings, list):
        log.warning("squawk skipped: exit %s: %s", done.returncode,
                    done.stderr.decode("utf-8", "replace").strip()[:200])
        return None
    return findings


class _Launched:
    """A squawk process reading the SQL from a file (no pipe to keep fed, so the caller need
    not wait or run a thread: squawk lints meanwhile, and blocks only once its output pipe
    is full, until wait() reads it)."""

    def __init__(self, command: list[str], sql: str, fallback: list[str]) -> None:
        self.fallback = fallback
        # An empty working directory keeps a stray .squawk.toml from changing the hazards.
        self._cwd = tempfile.TemporaryDirectory(prefix="squawk-")
        self._process: subprocess.Popen[bytes] | None = None
        self._error: Exception | None = None
        try:
            with open(Path(self._cwd.name) / "stdin.sql", "w+b") as stdin:
                stdin.write(sql.encode("utf-8"))
                stdin.seek(0)
                self._process = subprocess.Popen(
                    command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=self._cwd.name,
                )
        except OSError as exc:
            self._error = exc
            self._cwd.cleanup()

    def wait(self) -> subprocess.CompletedProcess[bytes] | None:
        """The finished process (None, logged, when it could not run or timed out)."""
        process = self._process
        if process is None:
            log.warning("squawk skipped: %s", self._error)
            return None
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            log.warning("squawk skipped: %s", exc)
            return None
        finally:
            self._cwd.cleanup()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _slim_finding(rules: Collection[str]) -> Callable[[dict], dict | None]:
    def slim(finding: dict) -> dict | None:
        if str(finding.get("rule_name")) not in rules:
            return None
        return {k: finding.get(k) for k in ("rule_name", "line", "column")}
    return slim


def _run(command: list[str], sql: str) -> subprocess.CompletedProcess[bytes] | None:
    # An empty working directory keeps a stray .squawk.toml from changing the hazards.
    with tempfile.TemporaryDirectory(prefix="squawk-") as cwd:
        try:
            return subprocess.run(
                command,
                input=sql.encode("utf-8"),
                capture_output=True,
                cwd=cwd,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("squawk skipped: %s", exc)
            return None


def squawk_hazards(
    sql: str, parsed: list[ParsedStatement], results: Sequence[Result | Findings]
) -> list[Hazard]:
    """Mapped squawk findings on the kinds each statement's rules left undecided."""
    return _mapped(sql, run_squawk(sql, SQUAWK_RULES), parsed, results)


def start_squawk_hazards(
    sql: str,
) -> Callable[[list[ParsedStatement], Sequence[Result | Findings]], list[Hazard]]:
    """Start squawk on `sql` now, in its own process: it lints while the caller parses and
    classifies. The returned function waits for it and gives squawk_hazards' answer."""
    launched = _launch(sql)

    def finish(parsed: list[ParsedStatement], results: Sequence[Result | Findings]) -> list[Hazard]:
        findings = _collect(launched, sql, SQUAWK_RULES)
        if not parsed:  # nothing to pin a finding on (and the caller may only be waiting)
            return []
        return _mapped(sql, findings, parsed, results)

    return finish


def _mapped(sql: str, findings: list[dict] | None, parsed: list[ParsedStatement],
            results: Sequence[Result | Findings]) -> list[Hazard]:
    if not findings:
        return []
    line_starts = [0]
    for i, ch in enumerate(sql):
        if ch == "\n":
            line_starts.append(i + 1)
    starts = [p.start for p in parsed]
    hazards = []
    for finding in findings:
        kinds = SQUAWK_RULES.get(str(finding.get("rule_name")))
        if not kinds:
            continue
        offset = _squawk_offset(sql, line_starts, finding.get("line"), finding.get("column"))
        if offset is None:
            continue
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        p, result = parsed[index], results[index]
        have = result.decided | {kind for kind, _ in result.found}
        for kind in kinds:
            if kind not in have:
                text = f"{kind} {finding['rule_name']} on {summary(p.statement.sql)}"
                hazards.append(Hazard(kind, clean(text), p.statement.line))
    return hazards


def _squawk_offset(sql: str, line_starts: list[int], line: object, column: object) -> int | None:
    # squawk counts lines from 0 and columns in UTF-8 bytes.
    if not isinstance(line, int) or not 0 <= line < len(line_starts):
        return None
    start = line_starts[line]
    end = line_starts[line + 1] if line + 1 < len(line_starts) else len(sql)
    byte_col = column if isinstance(column, int) and column > 0 else 0
    prefix = sql[start:end].encode("utf-8")[:byte_col].decode("utf-8", "ignore")
    return start + len(prefix)
