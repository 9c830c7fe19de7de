"""Small inline-SVG charts for the self-contained report (no plotting library, no assets).

Every function returns one ``<svg>`` element as text, sized by ``viewBox`` so
it scales with the page, with a ``<title>`` for screen readers. Values that
are NaN are left out (lines break at them). Inputs are plain sequences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

W, H = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 24, 28
COLORS = ("#1f5fa8", "#c2452d", "#2e8540", "#7a4fa3")


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _svg(title: str, body: list[str], width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    if hi <= lo:
        hi = lo + 1.0
    k = (b - a) / (hi - lo)
    return k, a - lo * k


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    band: tuple[Sequence[float], Sequence[float]] | None = None,
    unit: str = "",
) -> str:
    """Lines over categorical x (e.g. dates), optional shaded band (e.g. baseline +/- 1 SD)."""
    n = len(x_labels)
    values = [v for _, ys in series for v in ys if _finite(v)]
    if band is not None:
        values += [v for v in (*band[0], *band[1]) if _finite(v)]
    if not values or n == 0:
        return _svg(title, [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text>'])
    lo, hi = min(values), max(values)
    margin = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - margin, hi + margin
    ky, by = _scale(lo, hi, H - PAD_B, PAD_T)
    step = (W - PAD_L - PAD_R) / max(n - 1, 1)

    def x(i: int) -> float:
        return PAD_L + i * step

    body = [f'<text x="{PAD_L}" y="14" font-size="12">{escape(title)} {escape(unit)}</text>']
    for t in _ticks(lo, hi):
        y = ky * t + by
        body.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_fmt(t)}</text>"
        )
    label_every = max(1, n // 10)
    for i, lab in enumerate(x_labels):
        if i % label_every == 0:
            body.append(
                f'<text x="{x(i):.1f}" y="{H - 8}" font-size="10" text-anchor="middle">'
                f"{escape(lab)}</text>"
            )
    if band is not None:
        lo_b, hi_b = band
        seg: list[int] = []
        for i in [*range(n), -1]:
            ok = i >= 0 and _finite(lo_b[i]) and _finite(hi_b[i])
            if ok:
                seg.append(i)
                continue
            if seg:
                pts = [f"{x(j):.1f},{ky * hi_b[j] + by:.1f}" for j in seg]
                pts += [f"{x(j):.1f},{ky * lo_b[j] + by:.1f}" for j in reversed(seg)]
                if len(seg) == 1:
                    j = seg[0]
                    pts = [
                        f"{x(j) - 4:.1f},{ky * hi_b[j] + by:.1f}",
                        f"{x(j) + 4:.1f},{ky * hi_b[j] + by:.1f}",
                        f"{x(j) + 4:.1f},{ky * lo_b[j] + by:.1f}",
                        f"{x(j) - 4:.1f},{ky * lo_b[j] + by:.1f}",
                    ]
                body.append(
                    f'<polygon class="baseline-band" points="{" ".join(pts)}" '
                    'fill="#f2c14e" fill-opacity="0.35"/>'
                )
                seg = []
    for k, (name, ys) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        path: list[str] = []
        for i, v in enumerate(ys):
            if _finite(v):
                cmd = "L" if path and _finite(ys[i - 1]) else "M"
                path.append(f"{cmd}{x(i):.1f},{ky * v + by:.1f}")
                body.append(
                    f'<circle cx="{x(i):.1f}" cy="{ky * v + by:.1f}" r="2.5" fill="{color}"/>'
                )
        if path:
            body.append(
                f'<path d="{"".join(path)}" fill="none" stroke="{color}" stroke-width="1.6"/>'
            )
        body.append(
            f'<text x="{W - PAD_R - 4}" y="{14 + 12 * k}" font-size="11" text-anchor="end" '
            f'fill="{color}">{escape(name)}</text>'
        )
    return _svg(title, body)


def actogram(title: str, day_labels: Sequence[str], bins: Sequence[Sequence[float]]) -> str:
    """Double-plotted actogram: row i shows day i then day i + 1 (48 h), one bar per bin.

    ``bins[i]`` holds one day's activity per equal bin (e.g. 48 half-hours); NaN = no data
    (drawn as a grey tick so missing data is visible, not mistaken for rest).
    """
    rows = len(bins)
    per_day = len(bins[0]) if rows else 0
    row_h = 22
    height = PAD_T + rows * row_h + PAD_B
    values = sorted(v for day in bins for v in day if _finite(v))
    top = values[int(0.95 * (len(values) - 1))] if values else 1.0
    top = top or 1.0
    left, right = 80, W - PAD_R
    bw = (right - left) / max(2 * per_day, 1)
    body = [f'<text x="{PAD_L}" y="14" font-size="12">{escape(title)}</text>']
    for h in range(0, 49, 6):
        xx = left + h / 48 * (right - left)
        body.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{PAD_T}" y2="{height - PAD_B}" stroke="#eee"/>'
            f'<text x="{xx:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">'
            f"{h % 24:02d}</text>"
        )
    for i in range(rows):
        y0 = PAD_T + (i + 1) * row_h
        body.append(
            f'<text x="{left - 6}" y="{y0 - 6}" font-size="10" text-anchor="end">'
            f"{escape(day_labels[i])}</text>"
        )
        for half, day in ((0, i), (1, i + 1)):
            if day >= rows:
                continue
            for j, v in enumerate(bins[day]):
                xx = left + (half * per_day + j) * bw
                if not _finite(v):
                    body.append(
                        f'<rect x="{xx:.1f}" y="{y0 - 2}" width="{bw:.2f}" height="2" fill="#bbb"/>'
                    )
                    continue
                hgt = min(v / top, 1.0) * (row_h - 4)
                if hgt > 0:
                    body.append(
                        f'<rect class="act" x="{xx:.1f}" y="{y0 - hgt:.1f}" width="{bw:.2f}" '
                        f'height="{hgt:.1f}" fill="#222"/>'
                    )
    return _svg(title, body, height=height)


def timeline(
    title: str,
    row_labels: Sequence[str],
    spans: Sequence[Sequence[tuple[float, float]]],
    *,
    start_h: float = 18.0,
    hours: float = 18.0,
) -> str:
    """One row per night, spans in hours after ``start_h`` of the row's date."""
    rows = len(row_labels)
    row_h = 18
    height = PAD_T + rows * row_h + PAD_B
    left, right = 80, W - PAD_R
    kx = (right - left) / hours
    body = [f'<text x="{PAD_L}" y="14" font-size="12">{escape(title)}</text>']
    for h in range(0, int(hours) + 1, 2):
        xx = left + h * kx
        body.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{PAD_T}" y2="{height - PAD_B}" stroke="#eee"/>'
            f'<text x="{xx:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">'
            f"{int(start_h + h) % 24:02d}</text>"
        )
    for i, label in enumerate(row_labels):
        y = PAD_T + i * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + 13}" font-size="10" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for a, b in spans[i]:
            a, b = max(a, 0.0), min(b, hours)
            if b > a:
                body.append(
                    f'<rect class="sleep" x="{left + a * kx:.1f}" y="{y + 3}" '
                    f'width="{(b - a) * kx:.1f}" height="{row_h - 6}" fill="#1f5fa8"/>'
                )
    return _svg(title, body, height=height)


def heatmap(
    title: str,
    row_labels: Sequence[str],
    cells: Sequence[Sequence[float]],
    *,
    col_labels: Sequence[str] = (),
    right_labels: Sequence[str] = (),
) -> str:
    """Rows x columns of values in [0, 1] (white -> green); NaN is grey."""
    rows = len(cells)
    cols = len(cells[0]) if rows else 0
    row_h = 16
    height = PAD_T + rows * row_h + PAD_B
    left, right = 80, W - 70
    cw = (right - left) / max(cols, 1)
    body = [f'<text x="{PAD_L}" y="14" font-size="12">{escape(title)}</text>']
    for j, lab in enumerate(col_labels):
        if j % 3 == 0:
            body.append(
                f'<text x="{left + (j + 0.5) * cw:.1f}" y="{height - 10}" font-size="10" '
                f'text-anchor="middle">{escape(lab)}</text>'
            )
    for i, row in enumerate(cells):
        y = PAD_T + i * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="10" text-anchor="end">'
            f"{escape(row_labels[i])}</text>"
        )
        for j, v in enumerate(row):
            if _finite(v):
                g = max(0.0, min(1.0, v))
                r, gg, b = int(255 - 209 * g), int(255 - 122 * g), int(255 - 191 * g)
                fill = f"rgb({r},{gg},{b})"
            else:
                fill = "#ccc"
            body.append(
                f'<rect class="cell" x="{left + j * cw:.1f}" y="{y}" width="{cw:.2f}" '
                f'height="{row_h - 1}" fill="{fill}"/>'
            )
        if i < len(right_labels):
            body.append(
                f'<text x="{right + 6}" y="{y + 12}" font-size="10">'
                f"{escape(right_labels[i])}</text>"
            )
    return _svg(title, body, height=height)


def bland_altman(
    title: str,
    means: Sequence[float],
    diffs: Sequence[float],
    *,
    bias: float,
    loa_low: float,
    loa_high: float,
    unit: str = "",
) -> str:
    """Differences (self - sensed) against pair means, with bias and limits of agreement."""
    pts = [(m, d) for m, d in zip(means, diffs, strict=True) if _finite(m) and _finite(d)]
    if not pts:
        return _svg(title, [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no pairs</text>'])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ys_all = [*ys, *(v for v in (bias, loa_low, loa_high, 0.0) if _finite(v))]
    x_lo, x_hi = min(xs), max(xs)
    x_pad = (x_hi - x_lo) * 0.08 or 1.0
    y_lo, y_hi = min(ys_all), max(ys_all)
    y_pad = (y_hi - y_lo) * 0.1 or 1.0
    kx, bx = _scale(x_lo - x_pad, x_hi + x_pad, PAD_L, W - 120)
    ky, by = _scale(y_lo - y_pad, y_hi + y_pad, H - PAD_B, PAD_T)
    body = [f'<text x="{PAD_L}" y="14" font-size="12">{escape(title)}</text>']
    for t in _ticks(y_lo - y_pad, y_hi + y_pad):
        y = ky * t + by
        body.append(
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_fmt(t)}</text>"
        )
    for t in _ticks(x_lo - x_pad, x_hi + x_pad):
        body.append(
            f'<text x="{kx * t + bx:.1f}" y="{H - 8}" font-size="10" text-anchor="middle">'
            f"{_fmt(t)}</text>"
        )
    for name, v, dash in (
        ("bias", bias, ""),
        ("-1.96 SD", loa_low, "4,3"),
        ("+1.96 SD", loa_high, "4,3"),
        ("0", 0.0, "1,3"),
    ):
        if _finite(v):
            y = ky * v + by
            body.append(
                f'<line x1="{PAD_L}" x2="{W - 120}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c2452d" '
                f'stroke-dasharray="{dash}"/>'
                f'<text x="{W - 116}" y="{y + 4:.1f}" font-size="10">{name} {_fmt(v)} '
                f"{escape(unit)}</text>"
            )
    for m, d in pts:
        body.append(
            f'<circle class="pair" cx="{kx * m + bx:.1f}" cy="{ky * d + by:.1f}" r="3" '
            'fill="#1f5fa8"/>'
        )
    return _svg(title, body)
