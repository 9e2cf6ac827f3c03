"""The small Markdown reader the docs checks share (tests/test_docs_*.py), and its tests.

The docs are plain Markdown with fenced code blocks, tables and inline code; the checks need
four things from a page: its fenced blocks (with the line they start on and the HTML comment
just above them, where a block carries an instruction for the checks), its prose lines
outside those blocks, the inline code spans of a line, and the HTML-comment markers of a
line (`<!-- fig ... -->`, `<!-- error-from: ... -->`). A regular-expression reader is enough
for that and keeps the checks free of a Markdown dependency.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# Every page a reader meets: the README (GitHub, PyPI) and the MkDocs pages.
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_COMMENT = re.compile(r"<!--\s*(?P<body>.*?)\s*-->")
_CODE_SPAN = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (info string), text and where it starts."""

    page: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    comment: str  # the body of an HTML comment on the line just above the fence, or ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def relative(page: Path) -> str:
    return str(page.relative_to(REPO))


def fenced_blocks(text: str, page: Path = REPO / "page.md") -> list[Block]:
    """Every fenced block of a page, in order (an unclosed fence runs to the end)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        above = lines[index - 1].strip() if index else ""
        comment = _COMMENT.fullmatch(above)
        blocks.append(
            Block(
                page=page,
                line=index + 1,
                info=opening["info"].strip(),
                text="\n".join(body),
                comment=comment["body"] if comment else "",
            )
        )
        index = end + 1
    return blocks


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every line outside fenced blocks."""
    inside: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = _FENCE.match(line)
        if inside is None and fence:
            inside = fence["fence"]
            continue
        if inside is not None:
            if fence and fence["fence"][0] == inside[0] and not fence["info"].strip():
                inside = None
            continue
        yield number, line


def paragraphs(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, the paragraph's lines joined by spaces) for the prose of a page,
    so that an inline code span broken across two lines is read whole."""
    lines: list[str] = []
    start = 0
    previous = -1
    for number, line in prose_lines(text):
        if not line.strip() or number != previous + 1 or line.lstrip().startswith(("#", "|")):
            if lines:
                yield start, " ".join(lines)
            lines, start = [], number
        if line.strip():
            if not lines:
                start = number
            lines.append(line.strip())
            if line.lstrip().startswith(("#", "|")):
                yield start, lines.pop()
        previous = number
    if lines:
        yield start, " ".join(lines)


def code_spans(line: str) -> list[str]:
    """The inline code spans of a line (``double-backtick`` spans included), stripped."""
    return [match["code"].strip() for match in _CODE_SPAN.finditer(line)]


def blank_code_and_comments(line: str) -> str:
    """The line with inline code spans and HTML comments blanked out (positions kept)."""
    line = _COMMENT.sub(lambda m: " " * len(m[0]), line)
    return _CODE_SPAN.sub(lambda m: " " * len(m[0]), line)


def comments(line: str) -> list[re.Match[str]]:
    """The HTML comments of a line, as matches (`body` group, and their positions)."""
    return list(_COMMENT.finditer(line))


def shell_commands(block_text: str) -> list[str]:
    """The command lines of a shell block: continuations joined, `$ ` prompts and trailing
    comments dropped, output lines (in a console block, those without a prompt) left out."""
    lines = block_text.splitlines()
    console = any(line.startswith("$ ") for line in lines)
    commands: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.rstrip()
        if console and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(_drop_comment(pending + line).strip())
        pending = ""
    if pending:
        commands.append(_drop_comment(pending).strip())
    return commands


def _drop_comment(line: str) -> str:
    """`cmd args   # why` -> `cmd args` (a `#` inside quotes is kept)."""
    quote = ""
    for position, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def test_fenced_blocks_keep_language_line_and_comment_above() -> None:
    text = (
        "intro\n<!-- docs-check: skip -->\n```bash\nemotionkit --help\n```\n\n  ```\n  x\n  ```\n"
    )
    first, second = fenced_blocks(text)
    assert (first.info, first.line, first.text, first.comment) == (
        "bash",
        3,
        "emotionkit --help",
        "docs-check: skip",
    )
    assert (second.info, second.text, second.comment) == ("", "x", "")


def test_prose_lines_skip_fenced_blocks() -> None:
    text = "a\n```\nb\n```\nc\n"
    assert list(prose_lines(text)) == [(1, "a"), (5, "c")]


def test_paragraphs_join_lines_and_keep_headings_and_table_rows_apart() -> None:
    text = "# Title\nfirst `a\nb` line\nmore\n\n| x | y |\n| 1 | 2 |\nlast\n"
    assert list(paragraphs(text)) == [
        (1, "# Title"),
        (2, "first `a b` line more"),
        (6, "| x | y |"),
        (7, "| 1 | 2 |"),
        (8, "last"),
    ]


def test_code_spans_and_blanking() -> None:
    line = "run `emotionkit train` or ``a `b` c``<!-- fig x y --> 0.5"
    assert code_spans(line) == ["emotionkit train", "a `b` c"]
    blanked = blank_code_and_comments(line)
    assert "emotionkit" not in blanked and "fig" not in blanked and blanked.endswith("0.5")
    assert len(blanked) == len(line)


def test_shell_commands_join_continuations_and_drop_prompts_and_comments() -> None:
    block = "emotionkit train a \\\n    b=1   # why\n# a comment\nemotionkit recipe show 'x # y'\n"
    assert shell_commands(block) == [
        "emotionkit train a      b=1",
        "emotionkit recipe show 'x # y'",
    ]
    console = "$ emotionkit train r.yaml x=1\nerror: no\n"
    assert shell_commands(console) == ["emotionkit train r.yaml x=1"]
