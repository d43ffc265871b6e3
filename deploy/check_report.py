"""How `invoke check` reports: text, JSON, a GitHub step summary, annotations, a PR comment.

Every view is rendered from one JSON document, so the text, the Markdown and the
machine output never disagree.

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

from deploy import errors
from deploy.checker import SEVERITY_NAMES, CheckResult, Finding, PlanCheck
from deploy.config import Config
from deploy.plans import short
from deploy.report import Output, append_step_summary, fenced, json_document

COMMENT_MARKER = "<!-- schema-deploy -->"
MAX_ANNOTATIONS = 10  # GitHub shows at most ten error annotations per step
SUMMARY_LIMIT = 900_000  # characters; GitHub accepts 1 MiB per step summary
COMMENT_LIMIT = 60_000  # characters; GitHub refuses comments over 65536
_SQL_LIMIT = 20_000  # characters of one plan's SQL shown in Markdown
_TEXT_DETAIL_LINES = 80  # lines of SQL or object lists under one finding in text

_LABELS = {"error": "error:", "drift": "drift:", "hazard": "hazard:"}
_COLOURS = {"error": "red", "drift": "red", "hazard": "yellow"}
_ICONS = {"error": "🛑 error", "drift": "⚠️ drift", "hazard": "✋ unapproved hazard"}
_REPLAY_ICONS = {"landed": "✅ lands", "failed": "❌ fails", "not-replayed": "➖ not replayed",
                 "damaged": "❌ damaged"}


def show_check(out: Output, config: Config, result: CheckResult) -> int:
    """Print the check result (text or JSON), add the CI extras; return the exit code."""
    document = check_document(result)
    out.json("check", document)
    if out.format == "text":
        for line in render_text(document, out.colour):
            out.text(line)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in annotations(document, _workspace_prefix(config)):
                out.text(line)
    append_step_summary(render_markdown(document))
    json_path = os.environ.get("SCHEMA_CHECK_JSON")
    if json_path:
        Path(json_path).write_text(json_document("check", document) + "\n", encoding="utf-8")
    return result.exit_code


# --- the document ----------------------------------------------------------------------------


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


# --- text ------------------------------------------------------------------------------------


def render_text(doc: dict[str, Any], colour: Callable[[str, str], str]) -> list[str]:
    """Human-readable lines: verdict, plans, models, target, then every finding and note."""
    lines = [_verdict(doc, colour), ""]
    plans = doc["plans"]
    if plans:
        lines.append(f"Plans ({len(plans)}, in chain order):")
        width = max(len(p["file"]) for p in plans)
        for p in plans:
            state = colour(f"{p['replay']:<12}", "green" if p["replay"] == "landed" else "red")
            arrow = f"{short(p['from'])} -> {short(p['to'])}" if p["to"] else ""
            hazards = p["hazards"]
            waiting = sum(not h["approved"] for h in hazards)
            extra = f"  {len(hazards)} hazard(s), {waiting} not approved" if hazards else ""
            if p["replay"] == "not-replayed":
                extra += f"  ({p['replay_message']})"
            lines.append(f"  {state} {p['file']:<{width}}  {arrow}{extra}")
            if p.get("expanded"):
                lines.append(" " * 15 + _parts_line(p))
    else:
        lines.append("Plans: none yet.")
    if doc["models"]:
        same = doc["models"] == doc["head"]
        lines.append(f"Models: {short(doc['models'])}"
                     + (" = head." if same else f", head {short(doc['head'])}."))
    target = doc["target"]
    if target:
        lines.append(f"Target: {target['url']}: {_target_words(target)}")
    for finding in doc["findings"]:
        lines.append("")
        label = colour(_LABELS[finding["severity"]], _COLOURS[finding["severity"]])
        lines.append(f"{label} " + _located(finding).replace("\n", "\n    "))
        details = finding["details"].rstrip()
        if details:
            if finding["kind"] == "drift" and doc["drift"] and doc["drift"]["sql"]:
                lines.append("  SQL from the head of the plans to the models:")
            shown = details.splitlines()
            lines.extend(("    " + line).rstrip() for line in shown[:_TEXT_DETAIL_LINES])
            if len(shown) > _TEXT_DETAIL_LINES:
                lines.append(f"    … {len(shown) - _TEXT_DETAIL_LINES} more lines "
                             "(`--format json` has them all)")
        if finding["kind"] == "drift" and doc["drift"] and doc["drift"]["hazards"]:
            lines.append("  A plan with this change carries these hazards (to be approved):")
            lines.extend(f"    {h['text']}" for h in doc["drift"]["hazards"])
    for note in doc["notes"]:
        lines.append("")
        lines.append(colour("note:", "dim") + " " + note)
    return lines


def _parts_line(p: dict[str, Any]) -> str:
    """How a two-part plan runs: its expand part now, its contract part in the next deploy."""
    late = [h for h in p["hazards"] if h["part"] == "contract"]
    placed = sum(h["kind"] == "BACKWARD_INCOMPATIBLE" and h["approved"] and h["reason"]
                 and h["reason"].startswith("in the contract part") for h in late)
    extra = f"; {len(late)} hazard(s) in contract" if late else ""
    extra += f" ({placed} needing no approval there)" if placed else ""
    return (f"two parts: expand {short(p['from'])} -> {short(p['expanded'])} in the deploy "
            f"that ships the new code, contract -> {short(p['to'])} in the next deploy{extra}")


def _verdict(doc: dict[str, Any], colour: Callable[[str, str], str]) -> str:
    if doc["status"] == "passed":
        landed = sum(p["replay"] == "landed" for p in doc["plans"])
        return colour(f"Schema check passed: {landed} plan(s) land on their 'to', the models "
                      "match the head, every hazard is approved.", "green")
    counts = doc["counts"]
    parts = [f"{counts['errors']} error(s)" if counts["errors"] else "",
             f"{counts['drift']} drift" if counts["drift"] else "",
             f"{counts['unapproved_hazards']} unapproved hazard(s)"
             if counts["unapproved_hazards"] else ""]
    return colour(f"Schema check FAILED (exit {doc['exit_code']}): "
                  + ", ".join(p for p in parts if p) + ".", "red")


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


# --- GitHub annotations ----------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped as GitHub requires."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: like data, plus ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """`::error` lines, most severe first; past GitHub's ten, one line says how many more."""
    findings = doc["findings"]
    lines = []
    shown = findings if len(findings) <= MAX_ANNOTATIONS else findings[: MAX_ANNOTATIONS - 1]
    for finding in shown:
        props = []
        if finding["file"]:
            props.append(f"file={escape_property(prefix + finding['file'])}")
            if finding["line"]:
                props.append(f"line={finding['line']}")
        props.append(f"title={escape_property(finding['title'])}")
        lines.append(f"::error {','.join(props)}::{escape_data(finding['message'])}")
    if len(shown) < len(findings):
        more = len(findings) - len(shown)
        lines.append(f"::error title={escape_property('More schema findings')}::"
                     + escape_data(f"{more} more finding(s): see the job log or step summary."))
    return lines


def _workspace_prefix(config: Config) -> str:
    """The project root relative to the checkout (annotations name files from there)."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return ""
    try:
        inside = config.root.relative_to(Path(workspace).resolve()).as_posix()
    except ValueError:
        return ""
    return "" if inside == "." else inside + "/"


# --- Markdown --------------------------------------------------------------------------------


def render_markdown(
    doc: dict[str, Any],
    *,
    only_files: Iterable[str] | None = None,
    limit: int = SUMMARY_LIMIT,
    heading: str = "##",
) -> str:
    """Markdown for the step summary or PR comment: verdict, findings, drift, plans, hazards.

    With `only_files`, only plans whose file is in it (or ends with it) are listed.
    SQL blocks are dropped, oldest plan first, until the text fits in `limit` characters.
    """
    plans = doc["plans"]
    if only_files is not None:
        wanted = list(only_files)
        plans = [p for p in plans if any(_same_file(p["file"], w) for w in wanted)]
    # Newest plan first: the one under review matters most and survives truncation.
    plans = list(reversed(plans))
    for shown in range(len(plans), -1, -1):
        text = _markdown(doc, plans, shown, heading, only_files is not None)
        if len(text) <= limit:
            return text
    return text[: limit - 40] + "\n\n… (truncated)\n"


def _markdown(
    doc: dict[str, Any], plans: list[dict[str, Any]], with_sql: int, h: str, filtered: bool
) -> str:
    out = [f"{h} {_md_verdict(doc)}", ""]
    if doc["findings"]:
        out += ["| | Finding | Where |", "|---|---|---|"]
        for f in doc["findings"]:
            where = f"`{f['file']}:{f['line']}`" if f["file"] and f["line"] else (
                f"`{f['file']}`" if f["file"] else "")
            out.append(f"| {_ICONS[f['severity']]} | {_cell(f['message'])} | {where} |")
        out.append("")
    drift = doc["drift"]
    if drift:
        out += [f"{h}# Unreviewed drift: SQL from the head of the plans to the models", ""]
        if drift["sql"]:
            out += [fenced(_cut(drift["sql"]), "sql"), ""]
        if drift["unexpressed"]:
            out += ["Differences with no generated SQL:", "",
                    fenced("\n".join(drift["unexpressed"]), ""), ""]
        out += ['Run `invoke plan --name "<what changed>"`, review the plan, and commit it.', ""]
    target = doc["target"]
    if target:
        out += [f"**Target** `{target['url']}`: {_target_words(target)}", ""]
    hazards = [(p, hz) for p in plans for hz in p["hazards"]]
    if hazards:
        out += [f"{h}# Hazards", "", "| Plan | Line | Kind | Hazard | Approval |",
                "|---|---|---|---|---|"]
        for p, hz in hazards:
            approval = (f"✅ {_cell(hz['reason'] or 'approved')}" if hz["approved"]
                        else "❌ not approved")
            where = f" ({hz['part']} part)" if hz.get("part") else ""
            out.append(f"| `{_cell(_basename(p['file']))}` | {hz['line']}{where} | "
                       f"{hz['kind']} | {_code(hz['text'])} | {approval} |")
        out.append("")
    if plans:
        title = "Plans in this pull request" if filtered else "Plans"
        out += [f"{h}# {title} (newest first)", "", "| Plan | From → To | Replay | Hazards |",
                "|---|---|---|---|"]
        for p in plans:
            arrow = f"`{short(p['from'])}` → `{short(p['to'])}`" if p["to"] else ""
            if p.get("expanded"):  # expand now, contract in the next deploy
                arrow = (f"`{short(p['from'])}` → `{short(p['expanded'])}` (expand) → "
                         f"`{short(p['to'])}` (contract)")
            waiting = sum(not hz["approved"] for hz in p["hazards"])
            count = (f"{len(p['hazards'])} ({waiting} not approved)" if waiting
                     else str(len(p["hazards"])))
            out.append(f"| `{_cell(p['file'])}`<br>{_cell(p['name'])} | {arrow} | "
                       f"{_REPLAY_ICONS[p['replay']]} | {count} |")
        out.append("")
        for index, p in enumerate(plans):
            if index >= with_sql:
                out += [f"<sub>SQL of `{_cell(p['file'])}` left out for length: read the file."
                        "</sub>", ""]
                continue
            if p["replay_message"]:
                out += [f"> {_cell(p['replay_message'])}", ""]
            out += ["<details><summary><code>" + _html(p["file"]) + "</code>: "
                    + _html(p["name"]) + "</summary>", "", fenced(_cut(p["sql"]), "sql"), "",
                    "</details>", ""]
    elif filtered:
        out += ["No plan file changed in this pull request.", ""]
    for note in doc["notes"]:
        out += [f"> note: {_cell(note)}", ""]
    return "\n".join(out)


def _md_verdict(doc: dict[str, Any]) -> str:
    if doc["status"] == "passed":
        return "✅ Schema check passed"
    return f"❌ Schema check failed (exit {doc['exit_code']})"


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


def _cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped, no HTML."""
    return _html(" ".join(text.split())).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code safe inside a table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return f"`` {flat} ``" if "`" in flat else f"`{flat}`"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- PR comment ------------------------------------------------------------------------------


def render_comment(doc: dict[str, Any] | None, changed: Iterable[str]) -> str:
    """The PR comment: the hidden marker, the verdict, and the plans this PR adds or edits."""
    if doc is None or doc.get("status") == "error":
        reason = (doc or {}).get("error") or "it produced no report"
        return (f"{COMMENT_MARKER}\n### ❌ Schema check could not run\n\n{_cell(reason)}\n\n"
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
