"""HTML building blocks of the report: escaped text, tables, fact lists, embedded PNGs.

Every string is escaped unless it is `Html`, markup built by these functions, so a class
name or a recipe value can never break the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

from emotionkit.evaluate.run_files import format_number


class Html(str):
    """Markup built here, inserted as is; every other string is escaped."""


def escape(value: Any) -> str:
    """`value` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def note(why: str) -> Html:
    """The "not available: why" line a section shows instead of what it could not read."""
    return Html(f'<p class="na">not available: {escape(why)}</p>')


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Html:
    """A scrollable table; numbers are formatted and right-aligned."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>\n" for row in rows)
    return Html(
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}</tbody>\n</table></div>"
    )


def fact_list(pairs: Iterable[tuple[str, Any]]) -> Html:
    """Name: value pairs as a definition list."""
    items = "".join(f"<dt>{escape(name)}</dt><dd>{_shown(value)}</dd>" for name, value in pairs)
    return Html(f"<dl>{items}</dl>")


def png_figure(png: bytes, caption: str) -> Html:
    """A PNG as a base64 data URI, so the one HTML file carries every image."""
    data = base64.b64encode(png).decode("ascii")
    return Html(
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _shown(value: Any) -> str:
    return value if isinstance(value, Html) else escape(format_number(value))


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_shown(value)}</td>' if numeric else f"<td>{_shown(value)}</td>"
