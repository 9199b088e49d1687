"""Plots and a self-contained HTML report (images embedded) for evaluate.py."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from core.atomic import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """PNG written atomically, figure closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_roc(y, p, path: Path, auc: float) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(set(np.asarray(y).tolist())) == 2:
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
    else:
        ax.text(0.5, 0.5, "ROC needs both classes", ha="center")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate (fakes caught)",
           title="ROC (video level)")
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_histogram(y, p, path: Path) -> None:
    y, p = np.asarray(y), np.asarray(p)
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label=f"REAL ({(y == 0).sum()})", color="tab:blue")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, label=f"FAKE ({(y == 1).sum()})", color="tab:red")
    ax.set(xlabel="predicted P(fake)", ylabel="videos", title="Score distribution per class")
    ax.legend()
    save_figure(fig, path)


def _img_tag(path: Path, width: int | None = None) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    kind = "png" if str(path).endswith(".png") else "jpeg"
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/{kind};base64,{data}"{size}>'


def _crop_cells(crops: pd.DataFrame | None, name: str) -> str:
    if crops is None:
        return "<p><i>no crop file given (predict_folder writes &lt;output&gt;.crops.csv)</i></p>"
    rows = crops[crops["filename"] == name].sort_values(["frame", "face"])
    if rows.empty:
        return "<p><i>no face crops for this video</i></p>"
    cells = []
    for row in rows.itertuples():
        thumb = str(row.thumbnail) if isinstance(row.thumbnail, str) else ""
        image = _img_tag(Path(thumb), 96) if thumb and Path(thumb).is_file() else ""
        cells.append(f'<div class="crop">{image}<br>f{row.frame} #{row.face}<br><b>{row.score:.3f}</b></div>')
    return '<div class="crops">' + "".join(cells) + "</div>"


def write_html(path: Path, metrics: dict, notes: list[str], mistakes: pd.DataFrame, crops: pd.DataFrame | None,
               images: list[Path]) -> None:
    metric_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.5f}</td></tr>" if isinstance(v, float)
                          else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in metrics.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Deepfake evaluation</title><style>",
        "body{font-family:sans-serif;margin:2em} td{padding:2px 10px} .crops{display:flex;flex-wrap:wrap}",
        ".crop{margin:3px;text-align:center;font-size:11px}</style></head><body>",
        "<h1>Evaluation</h1><table>", metric_rows, "</table>",
        "".join(f"<p>{html.escape(n)}</p>" for n in notes),
        "".join(_img_tag(p) for p in images),
        f"<h2>Most confident mistakes ({len(mistakes)})</h2>",
    ]
    for row in mistakes.itertuples():
        truth = "FAKE" if row.y == 1 else "REAL"
        parts.append(f"<h3>{html.escape(row.filename)}: {truth}, predicted P(fake) = {row.p:.4f}</h3>")
        parts.append(_crop_cells(crops, row.filename))
    parts.append("</body></html>")
    atomic_write_bytes(path, "\n".join(parts).encode())
