"""How `invoke check` reports: text, JSON, a GitHub step summary, annotations, a PR comment.

The JSON document below is the source: `check_view` turns it into the output Document that
deploy/output.py renders as text, Markdown and annotations, so they never disagree, and a PR
comment rendered later from the saved JSON says the same.

JSON shape (`invoke check --format json`), version 1. Fields are only ever added within a
version; renaming or removing one bumps "version".

    {
      "version": 1,
      "command": "check",
      "status": "passed" | "failed",
      "exit_code": 0 | 1 | 3 | 4,        # most severe finding: 1 error > 4 drift > 3 hazard
      "head": "sha256:…" | null,          # `to` of the last plan in the chain (null: no plans)
      "models": "sha256:…" | null,        # fingerprint of the models (null: they did not build)
      "counts": {"errors": int, "drift": int, "unapproved_hazards": int},
      "findings": [                       # most severe first, then by file and line
        {"severity": "error" | "drift" | "hazard",
         "exit_code": 1 | 4 | 3,
         "kind": "damaged" | "replay" | "fork" | "roots" | "orphan" | "models" | "drift"
                 | "snapshot" | "target" | "target-drift" | "hazard",
         "title": str, "message": str,    # message says what to do
         "file": str | null,              # relative to the project root, '/' separators
         "line": int | null,              # 1-based line in that file
         "details": str}                  # SQL or object lists; may be ""
      ],
      "plans": [                          # chain order, then plans off the chain by name
        {"file": str, "name": str, "from": str | null, "to": str | null,
         "on_chain": bool,
         "replay": "landed" | "failed" | "not-replayed" | "damaged",
         "replay_message": str,           # why it failed or was not replayed; "" if landed
         "hazards": [{"kind": str, "text": str, "line": int,
                      "approved": bool, "reason": str | null,
                      "part": "expand" | "contract" | null}],  # null: a one-part plan
         "sql": str,                      # the plan's body, header removed
         "expanded": str | null}          # two-part plans: the state between the parts
      ],
      "drift": null | {                   # present when the models differ from the head
        "sql": str | null,                # head -> models (null: the head did not replay)
        "hazards": [{"kind": str, "text": str, "line": int}],
        "unexpressed": [str],             # differences the differ has no SQL for
        "proven": bool},                  # sql applied to a copy of the head lands on the models
      "target": null | {                  # only with --target
        "url": str,                       # host:port/dbname, never a password
        "state": "head" | "pending" | "drift" | "ahead" | "no-plans" | "unreachable",
        "fingerprint": str | null, "postgres": int | null,
        "pending": [str],                 # plan files apply would run, in order
        "differences": [str]},            # with "drift": objects that differ from the head
      "notes": [str],
      "seconds": float
    }

When the check cannot run at all (no scratch server, bad configuration) the document is
the shared error shape instead: {"version": 1, "command": "check", "status": "error",
"exit_code": 1, "error": str, "details": str}.

Outside the --format choice: with $GITHUB_STEP_SUMMARY set, a Markdown summary is appended
there; with GITHUB_ACTIONS=true and text format, `::error` annotations are printed (the most
severe first: GitHub shows ten per step); with $SCHEMA_CHECK_JSON set, the JSON document is
also written to that file, so CI can log text and still build a PR comment from data:

    python -m deploy.check_report comment CHECK_JSON [--changed FILE_LIST] > comment.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from deploy import errors, output
from deploy.checker import SEVERITY_NAMES, CheckResult, Finding, PlanCheck
from deploy.config import Config
from deploy.output import (  # escape_*: part of this module's API, as before
    Annotation,
    Block,
    Document,
    Item,
    Row,
    Section,
    cell,
    escape_data,  # noqa: F401
    escape_property,  # noqa: F401
    html,
)
from deploy.plans import short
from deploy.report import Output

COMMENT_MARKER = "<!-- schema-deploy -->"
MAX_ANNOTATIONS = output.MAX_ANNOTATIONS
SUMMARY_LIMIT = output.SUMMARY_LIMIT
COMMENT_LIMIT = 60_000  # characters; GitHub refuses comments over 65536
_SQL_LIMIT = 20_000  # characters of one plan's SQL shown in Markdown

_LABELS = {"error": "error:", "drift": "drift:", "hazard": "hazard:"}
_COLOURS = {"error": "red", "drift": "red", "hazard": "yellow"}
_ICONS = {"error": "🛑 error", "drift": "⚠️ drift", "hazard": "✋ unapproved hazard"}
_REPLAY_ICONS = {"landed": "✅ lands", "failed": "❌ fails", "not-replayed": "➖ not replayed",
                 "damaged": "❌ damaged"}


def show_check(out: Output, config: Config, result: CheckResult) -> int:
    """Print the check result (text or JSON), add the CI extras; return the exit code."""
    document = check_document(result)
    exit_code = output.emit(out, check_view(document), root=config.root)
    json_path = os.environ.get("SCHEMA_CHECK_JSON")
    if json_path:
        Path(json_path).write_text(output.json_document("check", document) + "\n",
                                   encoding="utf-8")
    return exit_code


# --- the JSON document -----------------------------------------------------------------------


def check_document(result: CheckResult) -> dict[str, Any]:
    """The JSON payload (without version and command, which Output.json adds)."""
    findings = result.ordered_findings()
    code = result.exit_code
    drift = None
    if any(f.kind == "drift" for f in findings):
        drift = {
            "sql": result.drift_sql,
            "hazards": [{"kind": h.kind, "text": h.text, "line": h.line}
                        for h in result.drift_hazards],
            "unexpressed": result.drift_unexpressed,
            "proven": result.drift_proven,
        }
    target = None
    if result.target is not None:
        t = result.target
        target = {"url": t.url, "state": t.state, "fingerprint": t.fingerprint,
                  "postgres": t.postgres, "pending": t.pending, "differences": t.differences}
    return {
        "status": "passed" if code == errors.OK else "failed",
        "exit_code": code,
        "head": result.head,
        "models": result.models,
        "counts": {
            "errors": sum(f.severity == errors.ERROR for f in findings),
            "drift": sum(f.severity == errors.DRIFT for f in findings),
            "unapproved_hazards": sum(f.severity == errors.UNAPPROVED_HAZARD for f in findings),
        },
        "findings": [_finding(f) for f in findings],
        "plans": [_plan(p) for p in result.plans],
        "drift": drift,
        "target": target,
        "notes": result.notes,
        "seconds": round(result.seconds, 2),
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {"severity": SEVERITY_NAMES[f.severity], "exit_code": f.severity, "kind": f.kind,
            "title": f.title, "message": f.message, "file": f.file, "line": f.line,
            "details": f.details}


def _plan(p: PlanCheck) -> dict[str, Any]:
    return {
        "file": p.file, "name": p.name, "from": p.from_fingerprint, "to": p.to_fingerprint,
        "on_chain": p.on_chain, "replay": p.replay, "replay_message": p.replay_message,
        "hazards": [{"kind": h.kind, "text": h.text, "line": h.line, "approved": h.approved,
                     "reason": h.reason, "part": h.part} for h in p.hazards],
        "sql": p.sql,
        "expanded": p.expanded_fingerprint,
    }


# --- the output document ---------------------------------------------------------------------


def check_view(doc: dict[str, Any], only_files: Iterable[str] | None = None) -> Document:
    """The output Document of a check JSON document (built from the JSON, so a PR comment
    rendered later from the saved file says the same). With `only_files`, the Markdown lists
    only the plans whose file is in it (or ends with it)."""
    plans = doc["plans"]
    filtered = only_files is not None
    if only_files is not None:
        wanted = list(only_files)
        plans = [p for p in plans if any(_same_file(p["file"], w) for w in wanted)]
    # Markdown: newest plan first: the one under review matters most and survives truncation.
    newest = list(reversed(plans))
    passed = doc["status"] == "passed"
    return Document(
        "check", doc["exit_code"],
        "✅ Schema check passed" if passed else f"❌ Schema check failed (exit {doc['exit_code']})",
        status=doc["status"], data=doc, level=2,
        sections=[
            Section([_verdict(doc), Row("")]),
            Section(_plan_lines(doc["plans"])),
            Section(_models_and_target(doc)),
            Section(_findings(doc), columns=["", "Finding", "Where"]),
            Section(_drift(doc["drift"]),
                    heading="Unreviewed drift: SQL from the head of the plans to the models"),
            Section(_hazards(newest), heading="Hazards",
                    columns=["Plan", "Line", "Kind", "Hazard", "Approval"]),
            Section(_plan_table(newest, filtered),
                    heading=("Plans in this pull request" if filtered else "Plans")
                    + " (newest first)" if newest else None,
                    columns=["Plan", "From → To", "Replay", "Hazards"]),
            Section([row for note in doc["notes"] for row in (
                Row("", markdown=""),
                Row(note, label="note:", tone="dim", markdown=f"> note: {cell(note)}"))]),
        ],
    )


def _verdict(doc: dict[str, Any]) -> Row:
    if doc["status"] == "passed":
        landed = sum(p["replay"] == "landed" for p in doc["plans"])
        return Row(f"Schema check passed: {landed} plan(s) land on their 'to', the models "
                   "match the head, every hazard is approved.", tone="green")
    counts = doc["counts"]
    parts = [f"{counts['errors']} error(s)" if counts["errors"] else "",
             f"{counts['drift']} drift" if counts["drift"] else "",
             f"{counts['unapproved_hazards']} unapproved hazard(s)"
             if counts["unapproved_hazards"] else ""]
    return Row(f"Schema check FAILED (exit {doc['exit_code']}): "
               + ", ".join(p for p in parts if p) + ".", tone="red")


def _plan_lines(plans: list[dict[str, Any]]) -> list[Item]:
    """Terminal: every plan in chain order with its replay and hazard counts."""
    if not plans:
        return [Row("Plans: none yet.")]
    rows: list[Item] = [Row(f"Plans ({len(plans)}, in chain order):")]
    width = max(len(p["file"]) for p in plans)
    for p in plans:
        arrow = f"{short(p['from'])} -> {short(p['to'])}" if p["to"] else ""
        hazards = p["hazards"]
        waiting = sum(not h["approved"] for h in hazards)
        extra = f"  {len(hazards)} hazard(s), {waiting} not approved" if hazards else ""
        if p["replay"] == "not-replayed":
            extra += f"  ({p['replay_message']})"
        rows.append(Row(f"{p['file']:<{width}}  {arrow}{extra}", label=f"  {p['replay']:<12}",
                        tone="green" if p["replay"] == "landed" else "red"))
        if p.get("expanded"):
            rows.append(Row(" " * 15 + _parts_line(p)))
    return rows


def _parts_line(p: dict[str, Any]) -> str:
    """How a two-part plan runs: its expand part now, its contract part in the next deploy."""
    late = [h for h in p["hazards"] if h["part"] == "contract"]
    placed = sum(h["kind"] == "BACKWARD_INCOMPATIBLE" and h["approved"] and h["reason"]
                 and h["reason"].startswith("in the contract part") for h in late)
    extra = f"; {len(late)} hazard(s) in contract" if late else ""
    extra += f" ({placed} needing no approval there)" if placed else ""
    return (f"two parts: expand {short(p['from'])} -> {short(p['expanded'])} in the deploy "
            f"that ships the new code, contract -> {short(p['to'])} in the next deploy{extra}")


def _models_and_target(doc: dict[str, Any]) -> list[Item]:
    rows: list[Item] = []
    if doc["models"]:
        same = doc["models"] == doc["head"]
        rows.append(Row(f"Models: {short(doc['models'])}"
                        + (" = head." if same else f", head {short(doc['head'])}.")))
    target = doc["target"]
    if target:
        words = _target_words(target)
        rows.append(Row(f"Target: {target['url']}: {words}",
                        markdown=f"**Target** `{target['url']}`: {words}"))
    return rows


def _findings(doc: dict[str, Any]) -> list[Item]:
    """Each finding: a labelled paragraph with its details (terminal), a table row
    (Markdown) and an annotation."""
    rows: list[Item] = []
    drift = doc["drift"]
    for f in doc["findings"]:
        where = f"`{f['file']}:{f['line']}`" if f["file"] and f["line"] else (
            f"`{f['file']}`" if f["file"] else "")
        finding = Row(_located(f).replace("\n", "\n    "), label=_LABELS[f["severity"]],
                      tone=_COLOURS[f["severity"]],
                      cells=[_ICONS[f["severity"]], cell(f["message"]), where],
                      annotation=Annotation(f["title"], f["message"], f["file"], f["line"]))
        rows += [Row(""), finding]
        details = f["details"].rstrip()
        if f["kind"] == "drift" and drift and drift["sql"] and details:
            rows.append(Row("  SQL from the head of the plans to the models:", details=details))
        else:
            finding.details = details
        if f["kind"] == "drift" and drift and drift["hazards"]:
            rows.append(Row("  A plan with this change carries these hazards (to be approved):"))
            rows += [Row(f"    {h['text']}") for h in drift["hazards"]]
    return rows


def _drift(drift: dict[str, Any] | None) -> list[Item]:
    """Markdown: the SQL that would take the head to the models, and what has none."""
    if not drift:
        return []
    items: list[Item] = []
    if drift["sql"]:
        items.append(Block(_cut(drift["sql"]), "sql", terminal=False))
    if drift["unexpressed"]:
        items += [Row(markdown="Differences with no generated SQL:"),
                  Block("\n".join(drift["unexpressed"]), terminal=False)]
    items.append(Row(markdown='Run `invoke plan --name "<what changed>"`, review the plan, and '
                              "commit it."))
    return items


def _hazards(plans: list[dict[str, Any]]) -> list[Item]:
    """Markdown: one table row per hazard of the shown plans, with its approval."""
    rows: list[Item] = []
    for p in plans:
        for hz in p["hazards"]:
            approval = (f"✅ {cell(hz['reason'] or 'approved')}" if hz["approved"]
                        else "❌ not approved")
            where = f" ({hz['part']} part)" if hz.get("part") else ""
            rows.append(Row(cells=[f"`{cell(_basename(p['file']))}`", f"{hz['line']}{where}",
                                   hz["kind"], output.code(hz["text"]), approval]))
    return rows


def _plan_table(plans: list[dict[str, Any]], filtered: bool) -> list[Item]:
    """Markdown: the plans newest first, then each one's SQL (dropped, oldest first, for
    length)."""
    if not plans:
        return [Row(markdown="No plan file changed in this pull request.")] if filtered else []
    items: list[Item] = []
    for p in plans:
        arrow = f"`{short(p['from'])}` → `{short(p['to'])}`" if p["to"] else ""
        if p.get("expanded"):  # expand now, contract in the next deploy
            arrow = (f"`{short(p['from'])}` → `{short(p['expanded'])}` (expand) → "
                     f"`{short(p['to'])}` (contract)")
        waiting = sum(not hz["approved"] for hz in p["hazards"])
        count = (f"{len(p['hazards'])} ({waiting} not approved)" if waiting
                 else str(len(p["hazards"])))
        items.append(Row(cells=[f"`{cell(p['file'])}`<br>{cell(p['name'])}", arrow,
                                _REPLAY_ICONS[p["replay"]], count]))
    for p in plans:
        items.append(Block(
            _cut(p["sql"]), "sql", summary=f"<code>{html(p['file'])}</code>: {html(p['name'])}",
            lead=f"> {cell(p['replay_message'])}" if p["replay_message"] else None,
            left_out=f"<sub>SQL of `{cell(p['file'])}` left out for length: read the file.</sub>",
            terminal=False))
    return items


def _target_words(target: dict[str, Any]) -> str:
    state = target["state"]
    if state == "pending":
        return f"on the path to head, {len(target['pending'])} plan(s) to apply: " + ", ".join(
            target["pending"])
    return {"head": "at head.", "drift": "DRIFT (matches no state of the plans).",
            "no-plans": "not compared (no plans yet).",
            "ahead": "ahead of the plans through reviewed plans recorded in its history.",
            "unreachable": "not checked (cannot connect)."}[state]


def _located(finding: dict[str, Any]) -> str:
    """The message, prefixed with file:line unless it already names the file."""
    file, message = finding["file"], finding["message"]
    if not file or file.rsplit("/", 1)[-1] in message:
        return message
    where = f"{file}:{finding['line']}" if finding["line"] else file
    return f"{where}: {message}"


def _same_file(doc_file: str, other: str) -> bool:
    # git lists paths from the repository root; the document, from the project root.
    other = other.strip()
    return bool(other) and (doc_file == other or other.endswith("/" + doc_file))


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _cut(sql: str) -> str:
    if len(sql) <= _SQL_LIMIT:
        return sql
    return sql[:_SQL_LIMIT] + "\n-- … truncated: read the plan file for the rest\n"


# --- the renderings, from a JSON document ----------------------------------------------------


def render_text(doc: dict[str, Any], colour: Callable[[str, str], str]) -> list[str]:
    """Human-readable lines: verdict, plans, models, target, then every finding and note."""
    return output.render_text(check_view(doc), colour)


def annotations(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """`::error` lines, most severe first; past GitHub's ten, one line says how many more."""
    return output.annotations(check_view(doc), prefix)


def render_markdown(
    doc: dict[str, Any],
    *,
    only_files: Iterable[str] | None = None,
    limit: int = SUMMARY_LIMIT,
    heading: str = "##",
) -> str:
    """Markdown for the step summary or PR comment: verdict, target, findings, drift, hazards,
    plans. With `only_files`, only plans whose file is in it (or ends with it) are listed.
    SQL blocks are dropped, oldest plan first, until the text fits in `limit` characters.
    """
    return output.render_markdown(check_view(doc, only_files), limit=limit, level=len(heading))


# --- PR comment ------------------------------------------------------------------------------


def render_comment(doc: dict[str, Any] | None, changed: Iterable[str]) -> str:
    """The PR comment: the hidden marker, the verdict, and the plans this PR adds or edits."""
    if doc is None or doc.get("status") == "error":
        reason = (doc or {}).get("error") or "it produced no report"
        return (f"{COMMENT_MARKER}\n### ❌ Schema check could not run\n\n{cell(reason)}\n\n"
                "See the job log for details.\n")
    body = render_markdown(doc, only_files=list(changed), limit=COMMENT_LIMIT, heading="###")
    return f"{COMMENT_MARKER}\n{body}"


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.check_report comment CHECK_JSON [--changed FILE]`: print the comment."""
    parser = argparse.ArgumentParser(prog="python -m deploy.check_report")
    sub = parser.add_subparsers(dest="command", required=True)
    comment = sub.add_parser("comment", help="Markdown PR comment from a check JSON document")
    comment.add_argument("check_json", type=Path)
    comment.add_argument("--changed", type=Path,
                         help="file listing the paths this pull request changes, one per line")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.check_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    changed: list[str] = []
    if args.changed is not None and args.changed.is_file():
        changed = args.changed.read_text(encoding="utf-8").splitlines()
    sys.stdout.write(render_comment(doc, changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
