"""The evidence report's pictures and HTML: a timeline plot, keyframes with each person's box, and the pages.

Plain HTML and CSS with relative, URL-quoted links, so the folder opens from disk (and from a zip) anywhere.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass
from collections.abc import Sequence
from urllib.parse import quote

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.card import ModelCard  # noqa: E402
from inference.evidence_rows import CropRow, PersonRow  # noqa: E402
from inference.keyframes import Keyframe  # noqa: E402

VERDICT_THRESHOLD = 0.5  # FAKE above it, as evaluate.py's accuracy counts
STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse} "
         "td,th{padding:3px 9px;text-align:left;border-bottom:1px solid #ddd;vertical-align:middle} "
         ".fake{color:#b00;font-weight:bold} .real{color:#060;font-weight:bold} .none{color:#777} "
         ".pair{display:inline-block;margin:4px 12px 12px 0;text-align:center;font-size:13px} "
         ".pair img{margin:1px} .note{color:#555;font-size:14px} .reason{color:#a40;font-weight:bold} "
         "img.thumb{width:64px;height:64px}")


def track_colour(track: int) -> tuple[int, int, int]:
    """RGB 0-255, the same for a person in the plot, on the keyframes and in the tables."""
    r, g, b = plt.get_cmap("tab10")(track % 10)[:3]
    return int(r * 255), int(g * 255), int(b * 255)


def _hex(track: int) -> str:
    red, green, blue = track_colour(track)
    return f"#{red:02x}{green:02x}{blue:02x}"


def href(name: str) -> str:
    """A relative link to a file name, quoted so spaces, '#', '?' and non-ASCII letters work from disk."""
    return quote(name, safe="/")


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = 88) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode a JPEG")
    return data.tobytes()


def timeline_png(rows: Sequence[CropRow], card: ModelCard, aggregation: str) -> bytes:
    """Crop score over the frame index, one line per person, with the aggregation's threshold."""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    for track in sorted({r.track for r in rows}):
        mine = sorted((r.frame, r.score) for r in rows if r.track == track)
        ax.plot([f for f, _ in mine], [s for _, s in mine], "o-", markersize=3, color=np.array(track_colour(track))
                / 255, label=f"person {track}")
    if aggregation != "mean":
        ax.axhline(card.confident_threshold, color="k", linestyle="--", linewidth=1,
                   label=f"confident threshold {card.confident_threshold:g}")
    ax.axhline(VERDICT_THRESHOLD, color="grey", linestyle=":", linewidth=1, label=f"verdict {VERDICT_THRESHOLD:g}")
    ax.set(xlabel="frame", ylabel="P(fake) of the crop", ylim=(-0.02, 1.02), title="Face scores over time")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return png_bytes(fig)


def draw_keyframe(keyframe: Keyframe, rows: Sequence[CropRow]) -> np.ndarray:
    """The keyframe with each box of its frame in its person's colour and label."""
    image = keyframe.image.copy()
    thickness = max(2, image.shape[1] // 320)
    for row in rows:
        if row.frame != keyframe.index:
            continue
        x1, y1, x2, y2 = (int(round(v * keyframe.scale)) for v in row.box)
        colour = track_colour(row.track)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        cv2.putText(image, f"person {row.track}: {row.score:.2f}", (x1, max(y1 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, colour, 1 + thickness // 2, cv2.LINE_AA)
    return image


def verdict_html(score: float | None) -> str:
    if score is None:
        return '<span class="none">not scored</span>'
    return '<span class="fake">FAKE</span>' if score > VERDICT_THRESHOLD else '<span class="real">REAL</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are HTML already (escape text before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _document(title: str, body: Sequence[str]) -> bytes:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            + STYLE + "</style></head><body>" + "\n".join(body) + "</body></html>").encode()


@dataclass
class TopCrop:
    row: CropRow
    crop_file: str  # relative to the page
    heat_file: str | None


@dataclass
class VideoPage:
    """Everything one video page shows; file names are relative to the page."""

    name: str
    score: float | None
    failure: str | None
    reason: str | None
    aggregation: str
    people: list[PersonRow]
    frames_scored: int  # sampled frames with at least one scored face
    frames_sampled: int | None  # sampled frames that decoded (None: unknown, e.g. rebuilt without frames)
    resampled: bool
    card: ModelCard
    models: list[str]
    aggregation_note: str
    timeline_file: str | None
    keyframe_files: list[tuple[int, str]]
    top_crops: list[TopCrop]
    heat_source: str
    settings: list[tuple[str, str]]


def video_page_html(page: VideoPage, index_href: str) -> bytes:
    esc = html.escape
    body = [f'<p><a href="{index_href}">&larr; all videos</a></p>', f"<h1>{esc(page.name)}</h1>"]
    score = "not scored" if page.score is None else f"{page.score:.4f}"
    body.append(f"<p>P(fake) <b>{score}</b> &mdash; verdict {verdict_html(page.score)} "
                f"(FAKE when P(fake) &gt; {VERDICT_THRESHOLD:g})</p>")
    if page.failure:
        body.append(f'<p class="reason">Not scored: {esc(page.failure)}: {esc(page.reason or "")}</p>')
    wanted = page.card.frames_per_video
    if page.frames_sampled is None:
        frames = f"{page.frames_scored} frames with a scored face ({wanted} sampled frames wanted)"
    else:
        frames = (f"{page.frames_sampled} of {wanted} sampled frames decoded, {page.frames_scored} of them with a "
                  f"scored face")
        if page.frames_sampled < wanted:
            frames += " (the video has fewer frames, or some could not be decoded: the score uses what was scored)"
        if page.resampled:
            frames += "; the header's frame count was wrong, so the frames were sampled over those that decode"
    body.append(f"<p>{esc(frames)}.</p>")
    if page.timeline_file:
        body += ["<h2>Timeline</h2>", f'<img src="{href(page.timeline_file)}" alt="timeline">']
    if page.keyframe_files:
        body.append("<h2>Keyframes</h2><p class='note'>Each person's box in that person's colour, with the crop's "
                    "score.</p>")
        body += [f'<div class="pair"><img src="{href(f)}" alt="frame {i}" width="380"><br>frame {i}</div>'
                 for i, f in page.keyframe_files]
    if page.top_crops:
        body.append(f"<h2>Most suspicious crops</h2><p class='note'>Each crop as the model saw it, beside a Grad-CAM "
                    f"heat map of where {esc(page.heat_source)} looked for FAKE (red: more).</p>")
        for top in page.top_crops:
            heat = f'<img src="{href(top.heat_file)}" alt="heat map" width="190">' if top.heat_file else ""
            body.append(f'<div class="pair"><img src="{href(top.crop_file)}" alt="crop" width="190">{heat}<br>'
                        f'frame {top.row.frame}, <span style="color:{_hex(top.row.track)}">person {top.row.track}'
                        f'</span>, P(fake) {top.row.score:.3f}</div>')
    if page.people:
        body.append("<h2>People</h2>")
        body.append(_table(["person", "frames", "first frame", "last frame", "score (confident)", "decided"],
                           [[f'<span style="color:{_hex(p.track)}">&#9632; person {p.track}</span>', str(p.frames),
                             str(p.first_frame), str(p.last_frame), f"{p.score:.4f}", "yes" if p.decided else ""]
                            for p in page.people]))
    body.append("<h2>The numbers</h2>")
    body.append(f"<p>{esc(page.aggregation_note)}</p>")
    body.append(_table(["setting", "value"], [[esc(k), esc(v)] for k, v in page.settings]))
    return _document(page.name, body)


@dataclass
class IndexRow:
    name: str
    page_href: str
    thumbnail_href: str | None
    score: float | None
    people: int
    frames_scored: int
    reason: str | None


def anchor(name: str) -> str:
    """An id for the video's row: the name URL-quoted (ids may hold any character but spaces)."""
    return "v-" + quote(name, safe="")


def index_html(rows: Sequence[IndexRow], models: str, provenance: Sequence[tuple[str, str]]) -> bytes:
    """One row per video, most suspicious first (unscored last), and an alphabetical list of links to the rows."""
    esc = html.escape
    ordered = sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0), r.name))
    scored = [r for r in rows if r.score is not None]
    fake = sum(r.score > VERDICT_THRESHOLD for r in scored)
    body = ["<h1>Evidence report</h1>",
            f"<p>{len(rows)} videos: {len(scored)} scored ({fake} FAKE at P(fake) &gt; {VERDICT_THRESHOLD:g}), "
            f"{len(rows) - len(scored)} not scored. Most suspicious first; click a name for its page.</p>",
            "<h2>What produced the scores</h2>",
            _table(["", ""], [[esc(k), esc(v)] for k, v in provenance]),
            "<h2>Videos</h2>"]
    table_rows = []
    for position, row in enumerate(ordered, 1):
        thumb = (f'<img class="thumb" src="{row.thumbnail_href}" alt="face">' if row.thumbnail_href else "")
        score = "&mdash;" if row.score is None else f"{row.score:.4f}"
        name = f'<a id="{anchor(row.name)}" href="{row.page_href}">{esc(row.name)}</a>'
        reason = f'<span class="reason">{esc(row.reason)}</span>' if row.reason else ""
        table_rows.append([str(position), thumb, name, score, verdict_html(row.score), str(row.people),
                           str(row.frames_scored), esc(models), reason])
    body.append(_table(["#", "most suspicious face", "video", "P(fake)", "verdict", "people", "frames scored",
                        "model(s)", "why not scored"], table_rows))
    body.append("<h2>By name</h2><p>" + " &middot; ".join(
        f'<a href="#{anchor(r.name)}">{esc(r.name)}</a>' for r in sorted(rows, key=lambda r: r.name)) + "</p>")
    return _document("Evidence report", body)
