"""What the terminal allows the CLI: its width, colour (on a terminal, unless NO_COLOR is set),
and tables that fit the width, their long cells cut at a word's end with an ellipsis and their
states coloured. Piped or redirected, output is neither cut nor coloured.

The decisions (`ellipsize`, `fit`) are pure and table-tested; stdlib and click only, so the
commands that must start fast (`list`, `status`) can use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

import click

ELLIPSIS = "…"
GAP = 2  # spaces between columns
MIN_FLEX = 10  # a flexible column is never cut narrower than this (or its header)

# the colour of each task state on a terminal (None: the terminal's own)
STATE_COLOURS: dict[str, str | None] = {
    "PENDING": None,
    "QUEUED": "blue",
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMED_OUT": "red",
    "CANCELLED": "yellow",
    "BUDGET_EXCEEDED": "magenta",
}


def ellipsize(text: str, width: int) -> str:
    """`text` in at most `width` characters: whole, or cut at the end of a word (unless that
    loses more than a third of the room) with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= (width - 1) * 2 // 3 and text[width - 1] != " ":
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ELLIPSIS


def fit(
    widths: Sequence[int], flexible: Sequence[int], limit: int | None, floors: Sequence[int]
) -> list[int]:
    """Column widths whose row (columns `GAP` apart) fits in `limit` characters: the flexible
    columns (by index) give up room, the widest first, down to their floor (`floors[i]`, at
    least `MIN_FLEX`); the others are never cut. No limit: the widths as they are."""
    out = list(widths)
    if limit is None:
        return out
    over = _total(out) - limit
    while over > 0:
        can = [i for i in flexible if out[i] > max(MIN_FLEX, floors[i])]
        if not can:
            break
        widest = max(can, key=lambda i: out[i])
        others = [out[i] for i in can if i != widest]
        floor = max(MIN_FLEX, floors[widest], max(others, default=0))
        step = min(over, out[widest] - floor) or 1
        out[widest] -= step
        over -= step
    return out


def layout(
    widths: Sequence[int],
    floors: Sequence[int],
    limit: int | None,
    *,
    flexible: Sequence[int] = (),
    optional: Sequence[int] = (),
) -> dict[int, int]:
    """Which columns (by index) are shown, and how wide, in `limit` characters: the flexible
    ones cut (`fit`), and while that is not enough the optional ones left out, in their
    order. {index: width}, in column order."""
    shown = list(range(len(widths)))
    while True:
        cut = fit(
            [widths[i] for i in shown],
            [k for k, i in enumerate(shown) if i in flexible],
            limit,
            [floors[i] for i in shown],
        )
        dropping = [i for i in optional if i in shown]
        if limit is None or _total(cut) <= limit or not dropping:
            return dict(zip(shown, cut, strict=True))
        shown.remove(dropping[0])


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(0, len(widths) - 1)


class Terminal:
    """One output stream as the CLI writes to it: its width (None: no limit) and colour."""

    def __init__(self, stream: IO[Any] | None = None, err: bool = False) -> None:
        stream = stream or (sys.stderr if err else sys.stdout)
        self.err = err
        tty = _isatty(stream)
        self.colour = tty and not os.environ.get("NO_COLOR")
        self.width = _columns(stream, tty)

    def paint(self, text: str, fg: str | None = None, **style: bool) -> str:
        if not self.colour or (fg is None and not style):
            return text
        return click.style(text, fg=fg, **style)

    def state(self, text: str, state: str | None = None) -> str:
        """`text` (a state, or a cell padded around it) in the colour of `state` (else itself)."""
        return self.paint(text, STATE_COLOURS.get((state or text).strip()))

    def cut(self, text: str, indent: int = 0) -> str:
        """One line of `text` cut to the width (less `indent`), with an ellipsis."""
        return text if self.width is None else ellipsize(text, max(1, self.width - indent))

    def echo(self, text: str = "") -> None:
        click.echo(text, err=self.err, color=self.colour)

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[tuple[str, str]],
        *,
        flexible: Sequence[str] = (),
        optional: Sequence[str] = (),
    ) -> None:
        """`rows` under the headers of `columns` ((key, header) pairs), fitted to the width:
        the `flexible` columns cut with an ellipsis, then the `optional` ones left out (in
        that order) if need be; the `state` column coloured."""
        keys = [key for key, _ in columns]
        cells = [[_text(r.get(key)) for key in keys] for r in rows]
        natural = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
        shown = layout(
            natural,
            [len(h) for _, h in columns],
            self.width,
            flexible=[keys.index(k) for k in flexible if k in keys],
            optional=[keys.index(k) for k in optional if k in keys],
        )
        self.echo(self._row([(columns[i][1], w, None) for i, w in shown.items()]))
        for row in cells:
            self.echo(
                self._row(
                    [
                        (ellipsize(row[i], w), w, row[i] if keys[i] == "state" else None)
                        for i, w in shown.items()
                    ]
                )
            )

    def _row(self, cells: Sequence[tuple[str, int, str | None]]) -> str:
        """Cells (text, width, the state that colours it) padded and joined; the last is not
        padded."""
        parts = []
        for n, (text, width, state) in enumerate(cells):
            padded = text if n == len(cells) - 1 else text.ljust(width)
            parts.append(self.state(padded, state) if state else padded)
        return (" " * GAP).join(parts).rstrip()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value).replace("\n", " ")


def _isatty(stream: IO[Any]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _columns(stream: IO[Any], tty: bool) -> int | None:
    """The width to fit on a terminal (COLUMNS if set, else its own); None when not one."""
    if not tty:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


__all__ = ["ELLIPSIS", "STATE_COLOURS", "Terminal", "ellipsize", "fit", "layout"]
