"""The report's plots, drawn with matplotlib and returned as inline SVG elements.

Matplotlib is imported inside the functions, so importing the report (as the CLI may) costs nothing until
a plot is drawn. Each plot starts from matplotlib's built-in defaults (a user's matplotlibrc changes
nothing), text is drawn as paths with the bundled DejaVu Sans (no font needed to view it), and the ids
are hashed with a fixed salt: the same input gives the same bytes. The SVG is trimmed for inlining in
HTML: no prolog, doctype, metadata, comments or namespace URLs, and only the ids something refers to,
each prefixed per plot so several plots on one page never share one. Figures are built without pyplot,
so no figure manager keeps them alive: each is cleared after it is saved and then collected.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

FIGSIZE = (6.0, 3.0)  # inches
LABEL_CHARS = 24  # run names longer than this are cut on the axes (the tables give them whole)
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "repropack-report",
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10.0,
}
POINT = "#1f77b4"
OUTSIDE = "#d62728"  # a run whose value is outside the tolerance band
BAND = "#2ca02c"


def metric_plot(name: str, runs: list[tuple[str, float]], expected: dict[str, Any] | None) -> str:
    """One point per run (labelled with its name) of the metric ``name``; with ``expected`` (the manifest's
    ``{"value", "abs_tol", "rel_tol"}``) a dashed line at the value and a band of ± the tolerance, and the
    points outside the band drawn in red."""
    with _style():
        figure, axes = _figure()
        band: tuple[float, float] | None = None
        if expected is not None:
            value = float(expected["value"])
            tolerance = float(expected.get("abs_tol", 0.0)) + float(expected.get("rel_tol", 0.0)) * abs(value)
            band = (value - tolerance, value + tolerance)
            axes.axhspan(*band, color=BAND, alpha=0.18, linewidth=0, label=f"tolerance ± {tolerance:.4g}")
            axes.axhline(value, color=BAND, linewidth=1.2, linestyle="--", label=f"expected {value:.6g}")
        for index, (_, got) in enumerate(runs):
            if not math.isfinite(got):
                continue  # NaN or inf: the table shows it, an axis cannot
            outside = band is not None and not band[0] <= got <= band[1]
            axes.plot([index], [got], marker="o", markersize=6, linestyle="none", color=OUTSIDE if outside else POINT)
        if runs:
            rotate = len(runs) > 4
            labels = [_cut(label) for label, _ in runs]
            axes.set_xticks(
                list(range(len(runs))), labels, rotation=30 if rotate else 0, ha="right" if rotate else "center"
            )
            axes.set_xlim(-0.5, len(runs) - 0.5)
        else:
            axes.set_xticks([])
            axes.text(0.5, 0.5, "no run reported this metric", transform=axes.transAxes, ha="center", va="center")
        axes.set_title(name)
        axes.set_ylabel(name)
        axes.grid(axis="y", alpha=0.3)
        if expected is not None:
            axes.legend(loc="best", fontsize="small")
        return _svg(figure, _prefix("metric", name), f"{name} across runs")


def history_plot(name: str, curves: list[tuple[str, list[float]]]) -> str:
    """The training curves of the metric ``name``: one line per run (legend: its name), x the step index
    (the n-th value the log printed)."""
    from matplotlib.ticker import MaxNLocator

    with _style():
        figure, axes = _figure()
        drawn = 0
        for label, values in curves:
            if not values:
                continue
            marker = "o" if len(values) == 1 else None
            axes.plot(range(len(values)), values, linewidth=1.2, marker=marker, label=_cut(label))
            drawn += 1
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        axes.set_title(f"{name}: training curves")
        axes.set_xlabel("step")
        axes.set_ylabel(name)
        axes.grid(alpha=0.3)
        if drawn:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")
        return _svg(figure, _prefix("history", name), f"{name} training curves")


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """Matplotlib's defaults plus STYLE for the block, whatever rcParams the process or a matplotlibrc
    set (restored after)."""
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        with matplotlib.rc_context(STYLE):
            yield


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, layout="constrained")
    return figure, figure.add_subplot()


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def _prefix(kind: str, name: str) -> str:
    """The ids' prefix of one plot: fixed by what it shows, distinct between the plots of one page."""
    return "rp" + hashlib.sha256(f"{kind}\0{name}".encode()).hexdigest()[:10]


def _svg(figure: Figure, prefix: str, title: str) -> str:
    buffer = io.StringIO()
    try:
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        figure.clear()
    return inline_svg(buffer.getvalue(), prefix, title)


_ID = re.compile(r' id="([^"]*)"')
_HREF = re.compile(r'href="#([^"]*)"')
_URL = re.compile(r"url\(#([^)]*)\)")


def inline_svg(document: str, prefix: str, title: str) -> str:
    """An SVG document as an element for an HTML page: from ``<svg`` on, without metadata, comments (the
    text of each label, drawn as paths anyway), namespace declarations (HTML's parser places ``<svg>`` in
    the SVG namespace) or ids nothing refers to; ``xlink:href`` as SVG 2's ``href``; the ids that remain
    prefixed with ``prefix``; a ``<title>`` for screen readers and tooltips."""
    body = document[document.index("<svg") :]
    body = re.sub(r"<!--.*?-->", "", body, flags=re.DOTALL)
    body = re.sub(r"<metadata>.*?</metadata>", "", body, flags=re.DOTALL)
    body = re.sub(r' xmlns(?::\w+)?="[^"]*"', "", body)
    body = body.replace("xlink:href=", "href=")
    used = set(_HREF.findall(body)) | set(_URL.findall(body))
    body = _ID.sub(lambda m: f' id="{prefix}-{m.group(1)}"' if m.group(1) in used else "", body)
    body = _HREF.sub(lambda m: f'href="#{prefix}-{m.group(1)}"', body)
    body = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", body)
    body = re.sub(r"[ \t]*\n\s*", "\n", body)  # indentation and trailing blanks: a quarter of the bytes
    body = re.sub(r"\n(?=[^<])", " ", body)  # path data on one line
    end = body.index(">") + 1
    label = html.escape(title, quote=True)
    return f'{body[: end - 1]} role="img" aria-label="{label}">\n<title>{label}</title>{body[end:]}'.strip()
