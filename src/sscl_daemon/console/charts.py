"""Server-side SVG charts for the console's Pictures page (pure: data in, markup out).

No chart library and no script: the page must work offline and under a
strict Content-Security-Policy, so the charts are plain SVG with
presentation attributes (no ``style``), a title and a description for
screen readers, and the page shows the same figures as a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 12, 36

# Colours with at least 3:1 contrast against white (WCAG non-text contrast).
RESULT_COLOURS: Mapping[str, str] = {
    "answered": "#1a7f37",
    "missed": "#b35900",
    "voicemail": "#6639ba",
    "abandoned": "#8a8a00",
    "rejected": "#cf222e",
    "busy": "#9a6700",
    "transferred": "#0969da",
    "incomplete": "#57606a",
}
_OTHER = "#3d444d"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    # (series name, value) bottom to top.
    parts: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(value for _, value in self.parts)


def colour(series: str) -> str:
    return RESULT_COLOURS.get(series, _OTHER)


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _ticks(top: int) -> int:
    """How many steps divide ``top`` (from :func:`_nice_max`) into whole, round values."""
    if top < 10:
        return top
    return {1: 5, 2: 4, 5: 5}[int(str(top)[0])]


def _axis(top: int, plot_h: int) -> list[str]:
    parts = []
    steps = _ticks(top)
    for i in range(steps + 1):
        value = top * i // steps
        y = _TOP + plot_h - plot_h * i / steps
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#24292f">{value}</text>'
        )
    return parts


def stacked_bars(
    ident: str, title: str, description: str, bars: Sequence[Bar], every: int = 1
) -> Markup:
    """Vertical stacked bars (one per label), the x labels shown every ``every`` bars;
    ``ident`` makes the title/description ids unique on the page."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    top = _nice_max(max((bar.total for bar in bars), default=0) or 1)
    slot = plot_w / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" class="chart">'
        f'<title id="{ident}-t">{escape(title)}</title>'
        f'<desc id="{ident}-d">{escape(description)}</desc>',
        *_axis(top, plot_h),
    ]
    for i, bar in enumerate(bars):
        x = _LEFT + i * slot + slot * 0.15
        y: float = _TOP + plot_h
        for series, value in bar.parts:
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colour(series)}"><title>{escape(bar.label)}: {value} '
                f"{escape(series)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - _BOTTOM + 16}" '
                f'text-anchor="middle" font-size="11" fill="#24292f">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
