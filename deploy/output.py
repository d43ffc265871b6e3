"""One output document per command, and the renderers that show any document.

A command builds a `Document` (title, status, exit code, JSON data, sections of rows and
blocks); `emit` then shows it as human text (colour only on a TTY), as the versioned JSON
document (`--format json`), as Markdown appended to $GITHUB_STEP_SUMMARY, and as GitHub
`::error` annotations for rows that carry one. Builders say *what* to show; only this module
says *how*, so the formats cannot drift apart.

A row names its terminal text and its Markdown separately (either may be None: the row is
then shown in one format only), because a terminal line and a Markdown table row rarely read
the same; everything else (colour, blank lines, tables, fences, escaping, length limits,
annotation limits) is decided here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy import urls
from deploy.errors import DeployError

if TYPE_CHECKING:  # report.Output writes what this module renders
    from collections.abc import Callable

    from deploy.report import Output

JSON_VERSION = 1
SUMMARY_LIMIT = 900_000  # characters; GitHub accepts 1 MiB per step summary
MAX_ANNOTATIONS = 10  # GitHub shows at most ten error annotations per step
DETAIL_LINES = 80  # lines of SQL or object lists under one row in text


@dataclass
class Annotation:
    """A GitHub `::error` annotation: title and message, optionally at a file and line."""

    title: str
    message: str
    file: str | None = None  # relative to the project root, '/' separators
    line: int | None = None


@dataclass
class Row:
    """One entry of a section: a terminal line, a Markdown line or table row, or both."""

    text: str | None = None  # terminal text (may span lines); None: not shown on a terminal
    label: str = ""  # a prefix shown in `tone` ("hazard:"); `text` follows after a space
    tone: str | None = None  # colour of the label, or of the whole text when there is none
    details: str = ""  # terminal: indented under the text, cut after DETAIL_LINES lines
    markdown: str | None = None  # Markdown line (a sentence, a list item); None: none
    cells: list[str] | None = None  # Markdown table row under the section's `columns`
    annotation: Annotation | None = None


@dataclass
class Block:
    """Verbatim text (SQL, object lists): printed as-is on a terminal, fenced in Markdown."""

    text: str
    language: str = ""
    summary: str | None = None  # Markdown: folded into <details> with this (HTML) summary
    lead: str | None = None  # Markdown line shown before it (left out along with it)
    left_out: str | None = None  # set: Markdown may drop it (last first) for length, saying this
    terminal: bool = True  # also printed on a terminal, between blank lines
    markdown: bool = True  # also shown in Markdown


Item = Row | Block  # a section's entries, in order


@dataclass
class Section:
    """A group of rows and blocks; in Markdown, an optional heading and table columns."""

    items: list[Item] = field(default_factory=list)
    heading: str | None = None  # Markdown heading, one level below the document's title
    columns: list[str] | None = None  # Markdown: rows with `cells` form a table with these


@dataclass
class Document:
    """What one command has to say, in every format: built once, rendered by this module."""

    command: str
    exit_code: int
    title: str  # the Markdown heading
    status: str | None = None  # the JSON "status" (None: the data names its own state)
    data: dict[str, Any] = field(default_factory=dict)  # the JSON document's other fields
    sections: list[Section] = field(default_factory=list)
    level: int = 3  # Markdown heading level of the title


# --- emitting ---------------------------------------------------------------------------------


def emit(out: Output, doc: Document, root: Path | None = None) -> int:
    """Show `doc` on `out` (text or JSON), append its Markdown to the step summary, print its
    annotations on GitHub Actions (text format); return its exit code."""
    out.json(doc.command, payload(doc))
    if out.format == "text":
        for line in render_text(doc, out.colour):
            out.text(line)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in annotations(doc, workspace_prefix(root)):
                out.text(line)
    append_step_summary(render_markdown(doc))
    return doc.exit_code


def payload(doc: Document) -> dict[str, Any]:
    """The JSON payload of `doc` (without version and command, which `json_document` adds)."""
    head: dict[str, Any] = {} if doc.status is None else {"status": doc.status}
    return {**head, "exit_code": doc.exit_code, **doc.data}


def error_data(exc: DeployError) -> dict[str, Any]:
    """The JSON fields of a command that failed with `exc`: the error shape every command
    shares (status "error", its exit code, the message and details, passwords masked)."""
    return {"status": "error", "exit_code": exc.exit_code, "error": urls.mask(exc.message),
            "details": urls.mask(exc.details)}


def json_document(command: str, data: dict[str, Any]) -> str:
    """A task's JSON document: the versioned envelope around `data`, passwords masked."""
    document = {"version": JSON_VERSION, "command": command, **data}
    return urls.mask(json.dumps(document, indent=2, default=str))


# --- text ------------------------------------------------------------------------------------


def render_text(doc: Document, colour: Callable[[str, str], str]) -> list[str]:
    """The terminal lines of `doc`; `colour(text, name)` colours (or returns text as is)."""
    lines: list[str] = []
    for section in doc.sections:
        for item in section.items:
            if isinstance(item, Block):
                if item.terminal:
                    lines += ["", item.text.rstrip(), ""]
            elif item.text is not None:
                lines.append(_text_line(item, colour))
                lines += _details(item.details)
    return lines


def _text_line(row: Row, colour: Callable[[str, str], str]) -> str:
    if row.label:
        words = row.label.lstrip()  # an indent is not coloured
        label = row.label[: len(row.label) - len(words)] + (
            colour(words, row.tone) if row.tone else words)
        return f"{label} {row.text}" if row.text else label
    return colour(row.text or "", row.tone) if row.tone and row.text else row.text or ""


def _details(details: str) -> list[str]:
    shown = details.rstrip().splitlines()
    lines = [("    " + line).rstrip() for line in shown[:DETAIL_LINES]]
    if len(shown) > DETAIL_LINES:
        lines.append(f"    … {len(shown) - DETAIL_LINES} more lines (`--format json` has them all)")
    return lines


# --- Markdown --------------------------------------------------------------------------------


def render_markdown(doc: Document, *, limit: int = SUMMARY_LIMIT, level: int | None = None) -> str:
    """Markdown of `doc` for a step summary or a comment, at most `limit` characters:
    droppable blocks go first, the last one first, then the text is cut."""
    droppable = sum(
        isinstance(item, Block) and item.markdown and item.left_out is not None
        for section in doc.sections for item in section.items
    )
    for kept in range(droppable, -1, -1):
        text = _markdown(doc, kept, doc.level if level is None else level)
        if len(text) <= limit:
            return text
    return text[: limit - 40] + "\n\n… (truncated)\n"


def _markdown(doc: Document, kept: int, level: int) -> str:
    h = "#" * level
    out = [f"{h} {doc.title}", ""]
    droppable = 0
    for section in doc.sections:
        items = [item for item in section.items if _in_markdown(item)]
        if not items:
            continue
        if section.heading:
            out += [f"{h}# {section.heading}", ""]
        run: list[str] = []  # consecutive Markdown lines, ended by a blank line
        table: list[str] = []
        for item in items:
            if isinstance(item, Row) and item.cells is not None:
                if run:
                    out += [*run, ""]
                    run = []
                if not table:
                    columns = section.columns or [""] * len(item.cells)
                    table = ["|" + "|".join(f" {c} " if c else " " for c in columns) + "|",
                             "|" + "---|" * len(columns)]
                table.append("| " + " | ".join(item.cells) + " |")
                continue
            if table:
                out += [*table, ""]
                table = []
            if isinstance(item, Row):
                if item.markdown:
                    run.append(item.markdown)
                elif run:  # an empty Markdown line ends a paragraph
                    out += [*run, ""]
                    run = []
                continue
            if run:
                out += [*run, ""]
                run = []
            if item.left_out is not None:
                droppable += 1
                if droppable > kept:
                    out += [item.left_out, ""]
                    continue
            out += _block(item)
        if table:
            out += [*table, ""]
        if run:
            out += [*run, ""]
    return "\n".join(out)


def _in_markdown(item: Item) -> bool:
    if isinstance(item, Block):
        return item.markdown
    return item.markdown is not None or item.cells is not None


def _block(block: Block) -> list[str]:
    lines = [block.lead, ""] if block.lead else []
    code = fenced(block.text, block.language)
    if block.summary is None:
        return [*lines, code, ""]
    return [*lines, f"<details><summary>{block.summary}</summary>", "", code, "",
            "</details>", ""]


def fenced(text: str, language: str = "") -> str:
    """A Markdown code block whose fence is longer than any run of backticks inside it."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped, no HTML."""
    return html(" ".join(text.split())).replace("|", "\\|")


def code(text: str) -> str:
    """Inline code safe inside a table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return f"`` {flat} ``" if "`" in flat else f"`{flat}`"


def html(text: str) -> str:
    """Text safe inside HTML (a <details> summary) and Markdown tables."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def append_step_summary(markdown: str) -> None:
    """Append Markdown to $GITHUB_STEP_SUMMARY when it is set (GitHub shows it on the run)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(urls.mask(markdown).rstrip("\n") + "\n\n")


# --- GitHub annotations ----------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped as GitHub requires."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: like data, plus ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(doc: Document, prefix: str = "") -> list[str]:
    """`::error` lines in document order; past GitHub's ten, one line says how many more."""
    found = [item.annotation for section in doc.sections for item in section.items
             if isinstance(item, Row) and item.annotation is not None]
    shown = found if len(found) <= MAX_ANNOTATIONS else found[: MAX_ANNOTATIONS - 1]
    lines = []
    for note in shown:
        props = []
        if note.file:
            props.append(f"file={escape_property(prefix + note.file)}")
            if note.line:
                props.append(f"line={note.line}")
        props.append(f"title={escape_property(note.title)}")
        lines.append(f"::error {','.join(props)}::{escape_data(note.message)}")
    if len(shown) < len(found):
        more = len(found) - len(shown)
        lines.append(f"::error title={escape_property('More schema findings')}::"
                     + escape_data(f"{more} more finding(s): see the job log or step summary."))
    return lines


def workspace_prefix(root: Path | None) -> str:
    """The project root relative to the checkout (annotations name files from there)."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace or root is None:
        return ""
    try:
        inside = root.relative_to(Path(workspace).resolve()).as_posix()
    except ValueError:
        return ""
    return "" if inside == "." else inside + "/"
