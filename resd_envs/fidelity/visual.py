"""Reports a person would rather look at: a self-contained HTML page and a PNG.

* HTML needs nothing beyond the standard library: tables, the disagreement list and, for
  BouncingSim, inline SVG pictures of our trajectory against the reference's positions for the
  worst scenes.
* PNG needs matplotlib (preferred) or pillow; with neither installed, :func:`write_png` raises
  :class:`~resd_envs.errors.MissingDependencyError` saying what to install (an env-only install has
  neither: ``pip install 'resd[render]'`` adds pillow).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from resd_envs.bouncingsim import load_scene, trajectory
from resd_envs.errors import MissingDependencyError
from resd_envs.fidelity.console import format_table
from resd_envs.fidelity.report import FidelityReport

COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e")
REF_COLOUR = "#d62728"
_FRAMES_PER_SECOND = 80


# -- geometry shared by SVG and PNG --------------------------------------------------------------------
def scene_picture_data(item: dict[str, Any]) -> dict[str, Any]:
    """Container outlines, our dense trajectory and both sets of test-time positions for one scene."""
    scene = load_scene(item["scene"])
    duration = max(item["times"])
    frames = max(2, int(duration * _FRAMES_PER_SECOND) + 1)
    _, balls, poses = trajectory(scene, duration=duration, frames=frames)
    walls = [box.vertices((float(p[0]), float(p[1])), float(p[2]))
             for box, p in zip(scene.containers, poses[0])]
    errors = np.asarray(item["errors"])
    worst = int(errors.argmax())
    return {"walls": walls, "path": balls, "ours": np.asarray(item["ours"]), "ref": np.asarray(item["expected"]),
            "worst": worst, "title": f"{item['uid']} ({item['group']}): worst t={item['times'][worst]:g}s, "
            f"mean error {errors[worst]:.2f} (tolerance {item['tolerance']:g})"}


def _bounds(data: dict[str, Any]) -> tuple[float, float, float, float]:
    xs = [x for wall in data["walls"] for x, _ in wall]
    ys = [y for wall in data["walls"] for _, y in wall]
    for key in ("path", "ref"):
        xs += list(data[key][..., 0].ravel())
        ys += list(data[key][..., 1].ravel())
    pad = 20.0
    return min(xs) - pad, max(xs) + pad, min(ys) - pad, max(ys) + pad


# -- HTML ------------------------------------------------------------------------------------------------
def scene_svg(item: dict[str, Any], size: int = 420) -> str:
    """An SVG picture: containers (grey), our path per ball (coloured line, dots at test times),
    the reference's positions (red crosses), and a black segment joining the two at the worst time."""
    data = scene_picture_data(item)
    x0, x1, y0, y1 = _bounds(data)
    scale = size / max(x1 - x0, y1 - y0)

    def pt(x: float, y: float) -> str:
        return f"{(x - x0) * scale:.1f},{(y1 - y) * scale:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
             f'style="background:#fafaf7;border:1px solid #ccc">']
    for wall in data["walls"]:
        parts.append(f'<polygon points="{" ".join(pt(x, y) for x, y in wall)}" fill="none" stroke="#555" '
                     'stroke-width="2"/>')
    for b in range(data["path"].shape[1]):
        colour = COLOURS[b % len(COLOURS)]
        parts.append(f'<polyline points="{" ".join(pt(x, y) for x, y in data["path"][:, b])}" fill="none" '
                     f'stroke="{colour}" stroke-width="1.5"/>')
        for x, y in data["ours"][:, b]:
            cx, cy = pt(x, y).split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        for x, y in data["ref"][:, b]:
            cx, cy = (float(v) for v in pt(x, y).split(","))
            parts.append(f'<path d="M{cx - 4:.1f},{cy - 4:.1f}L{cx + 4:.1f},{cy + 4:.1f}M{cx - 4:.1f},{cy + 4:.1f}'
                         f'L{cx + 4:.1f},{cy - 4:.1f}" stroke="{REF_COLOUR}" stroke-width="1.5"/>')
        w = data["worst"]
        parts.append(f'<polyline points="{pt(*data["ours"][w, b])} {pt(*data["ref"][w, b])}" stroke="black" '
                     'stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _e(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(text if len(text) < 2000 else text[:2000] + " ...")


def render_html(report: FidelityReport) -> str:
    """The whole report as one HTML page (no external files, no scripts)."""
    status = "OK" if report.ok else "FAIL"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>resd fidelity: {html.escape(report.env_id)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}"
        "td.l,th.l{text-align:left}pre{white-space:pre-wrap;margin:0;font-size:90%}"
        ".agree{color:#2a7}.known{color:#b80}.DISAGREE{color:#c22;font-weight:bold}</style></head><body>",
        f"<h1>Fidelity of {html.escape(report.env_id)}: <span class='{'agree' if report.ok else 'DISAGREE'}'>"
        f"{status}</span></h1>",
        f"<p>Input: {html.escape(report.source)}. Reference: {html.escape(report.reference)}.</p>",
        f"<p><b>{html.escape(report.one_line())}</b></p>",
        "<h2>Summary</h2><pre>" + html.escape(format_table(report)) + "</pre>",
    ]
    scenes = report.extras.get("scenes") or []
    if scenes:
        parts.append("<h2>Worst scenes</h2><p>Lines: our trajectory (pymunk), one colour per ball; dots: our "
                     "positions at the test times; red crosses: the reference's positions; black segment: the "
                     "gap at the worst time.</p>")
        for item in scenes:
            data_title = scene_picture_data(item)["title"]
            parts.append(f"<figure style='display:inline-block;margin:0 1em 1em 0'>{scene_svg(item)}"
                         f"<figcaption>{html.escape(data_title)}</figcaption></figure>")
    diffs = report.disagreements()
    parts.append(f"<h2>Disagreements ({len(diffs)})</h2>")
    if diffs:
        parts.append("<table><tr><th>line</th><th class='l'>case</th><th class='l'>status</th>"
                     "<th class='l'>input</th><th class='l'>resd</th><th class='l'>reference</th>"
                     "<th class='l'>reason</th></tr>")
        for c in diffs[:500]:
            parts.append(f"<tr><td>{c.line}</td><td class='l'>{html.escape(c.key)}</td>"
                         f"<td class='l {c.status}'>{c.status}</td><td class='l'><pre>{_e(c.input)}</pre></td>"
                         f"<td class='l'><pre>{_e(c.ours)}</pre></td><td class='l'><pre>{_e(c.reference)}</pre></td>"
                         f"<td class='l'>{html.escape(c.reason or c.note or '')}</td></tr>")
        parts.append("</table>")
    if report.row_errors:
        parts.append(f"<h2>Malformed rows ({len(report.row_errors)}, skipped)</h2><ul>")
        parts += [f"<li>{html.escape(str(e))}</li>" for e in report.row_errors]
        parts.append("</ul>")
    notes = [c for c in report.checks if c.agree and c.note]
    if notes:
        parts.append(f"<h2>Agreements worth knowing ({len(notes)})</h2><ul>")
        parts += [f"<li>line {c.line} {html.escape(c.key)}: {html.escape(c.note or '')}</li>"
                  for c in notes[:200]]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(report: FidelityReport, path: str | Path) -> Path:
    out = Path(path)
    out.write_text(render_html(report), encoding="utf-8")
    return out


# -- PNG -------------------------------------------------------------------------------------------------
def png_backend() -> str | None:
    """``"matplotlib"``, ``"pillow"`` or None: what :func:`write_png` can draw with here."""
    try:
        import matplotlib  # noqa: F401

        return "matplotlib"
    except ImportError:
        pass
    try:
        import PIL  # noqa: F401

        return "pillow"
    except ImportError:
        return None


def write_png(report: FidelityReport, path: str | Path, backend: str | None = None) -> Path:
    """Draw the report as a PNG: BouncingSim worst scenes (ours vs reference), else agreement per group.

    Raises:
        MissingDependencyError: neither matplotlib nor pillow is installed.
    """
    backend = backend or png_backend()
    if backend is None:
        raise MissingDependencyError(
            "--png needs matplotlib or pillow, and neither is installed in this environment "
            "(an env-only install has neither): pip install 'resd[render]' (pillow) or matplotlib. "
            "--html and --json work without them."
        )
    out = Path(path)
    if backend == "matplotlib":
        _png_matplotlib(report, out)
    else:
        _png_pillow(report, out)
    return out


def _png_matplotlib(report: FidelityReport, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    scenes = report.extras.get("scenes") or []
    if scenes:
        fig, axes = plt.subplots(1, len(scenes), figsize=(4.6 * len(scenes), 5.0), squeeze=False)
        for ax, item in zip(axes[0], scenes):
            data = scene_picture_data(item)
            for wall in data["walls"]:
                xs, ys = zip(*(wall + wall[:1]))
                ax.plot(xs, ys, color="#555", lw=1.5)
            for b in range(data["path"].shape[1]):
                colour = COLOURS[b % len(COLOURS)]
                ax.plot(data["path"][:, b, 0], data["path"][:, b, 1], color=colour, lw=1.2,
                        label="resd (pymunk)" if b == 0 else None)
                ax.scatter(data["ours"][:, b, 0], data["ours"][:, b, 1], color=colour, s=10)
                ax.scatter(data["ref"][:, b, 0], data["ref"][:, b, 1], color=REF_COLOUR, marker="x", s=28,
                           label="reference (Box2D)" if b == 0 else None)
                w = data["worst"]
                gap = np.stack([data["ours"][w, b], data["ref"][w, b]])
                ax.plot(gap[:, 0], gap[:, 1],
                        color="black", lw=2, label="gap at worst time" if b == 0 else None)
            ax.set_aspect("equal")
            ax.set_title(data["title"], fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7, loc="lower left")
        fig.suptitle(report.one_line(), fontsize=9)
    else:
        report.summarize()
        names = sorted(report.groups)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4.0))
        agree = [report.groups[n]["agree"] for n in names]
        known = [report.groups[n]["known"] for n in names]
        bad = [report.groups[n]["disagree"] for n in names]
        ax.bar(names, agree, color="#2a7", label="agree")
        ax.bar(names, known, bottom=agree, color="#e9b000", label="known difference")
        ax.bar(names, bad, bottom=[a + k for a, k in zip(agree, known)], color="#c22", label="unexplained")
        ax.set_ylabel("checks")
        ax.legend(fontsize=8)
        ax.set_title(report.one_line(), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _png_pillow(report: FidelityReport, out: Path) -> None:
    from PIL import Image, ImageDraw

    scenes = report.extras.get("scenes") or []
    size = 420
    if not scenes:
        report.summarize()
        img = Image.new("RGB", (640, 60 + 30 * len(report.groups)), "white")
        draw = ImageDraw.Draw(img)
        draw.text((10, 10), report.one_line(), fill="black")
        for i, (name, g) in enumerate(sorted(report.groups.items())):
            y = 45 + 30 * i
            width = int(400 * g["agreement"])
            draw.rectangle((200, y, 200 + width, y + 20), fill=(34, 170, 119))
            draw.rectangle((200 + width, y, 600, y + 20), fill=(204, 34, 34))
            draw.text((10, y + 4), f"{name}: {g['agree']}/{g['checks']}", fill="black")
        img.save(out)
        return
    img = Image.new("RGB", (size * len(scenes), size + 40), (250, 250, 247))
    draw = ImageDraw.Draw(img)
    draw.text((10, 5), report.one_line(), fill="black")
    for i, item in enumerate(scenes):
        data = scene_picture_data(item)
        x0, x1, y0, y1 = _bounds(data)
        scale = (size - 10) / max(x1 - x0, y1 - y0)

        def pt(x: float, y: float, i: int = i) -> tuple[float, float]:
            return (i * size + 5 + (x - x0) * scale, 35 + (y1 - y) * scale)

        for wall in data["walls"]:
            draw.polygon([pt(x, y) for x, y in wall], outline=(80, 80, 80))
        for b in range(data["path"].shape[1]):
            colour = COLOURS[b % len(COLOURS)]
            draw.line([pt(x, y) for x, y in data["path"][:, b]], fill=colour, width=2)
            for x, y in data["ref"][:, b]:
                px, py = pt(x, y)
                draw.line((px - 4, py - 4, px + 4, py + 4), fill=REF_COLOUR, width=2)
                draw.line((px - 4, py + 4, px + 4, py - 4), fill=REF_COLOUR, width=2)
            w = data["worst"]
            draw.line([pt(*data["ours"][w, b]), pt(*data["ref"][w, b])], fill="black", width=2)
        draw.text((i * size + 8, 20), data["title"][:70], fill="black")
    img.save(out)
