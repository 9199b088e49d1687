"""Plots and a self-contained HTML report (images embedded) for evaluate.py."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from core.atomic import atomic_write_bytes

plt.switch_backend("Agg")  # files only, never a window


def save_figure(fig, path: Path) -> None:
    """PNG written atomically, figure closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_roc(y, p, path: Path, auc: float | None) -> None:
    """ROC curve; `auc` None (one class only) draws a note instead of a curve."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    if auc is not None:
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "ROC needs both classes", ha="center")
    ax.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate (fakes caught)",
           title="ROC (video level)")
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


# One line per metric, shown in the report beside its value.
METRIC_HELP = {
    "videos": "labelled videos that have a prediction (the rows every metric below is computed on)",
    "fakes": "of which labelled FAKE", "reals": "of which labelled REAL",
    "roc_auc": "probability that a random fake scores above a random real (1 perfect, 0.5 chance); order only",
    "average_precision": "area under the precision-recall curve with FAKE as the positive class; order only",
    "eer": "equal error rate: the share of errors where reals called fake equal fakes missed (lower is better)",
    "log_loss": "mean -log P(true label), P clipped to [1e-15, 1 - 1e-15]: the DFDC competition score",
    "fake_log_loss": "log loss over the fakes only", "real_log_loss": "log loss over the reals only",
    "balanced_log_loss": "(fake_log_loss + real_log_loss) / 2: log loss with both classes weighted equally",
    "accuracy": "share of videos on the right side of 0.5 (an unscored 0.5 counts as REAL)",
    "ece": "expected calibration error: mean |fraction fake - mean score| over 10 score bins, weighted by size",
    "frame_roc_auc": "ROC AUC over face crops (each crop labelled as its video) from the crops file",
    "crops": "face crops with a label (their video is labelled)",
    "predictions_without_label": "predicted videos no label names (ignored)",
    "labels_without_prediction": "labelled videos without a prediction (ignored)",
    "predicted_exactly_0.5": "videos at exactly 0.5, usually unscored ones (no face, unreadable)",
}
GROUP_COLUMNS = ("videos", "fakes", "reals", "roc_auc", "average_precision", "eer", "log_loss", "balanced_log_loss")


def format_value(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(path: Path, metrics: dict, groups: dict[str, dict], inputs: dict[str, str], notes: list[str],
               mistakes: pd.DataFrame, crops: pd.DataFrame | None, images: list[Path],
               pages: dict[str, str] | None = None) -> None:
    """The report: what was evaluated, each metric with its value and meaning, per-group table, plots and the
    most confident mistakes with their face crops, each linked to its evidence page where `pages` has one."""
    metric_rows = [[name, format_value(value), METRIC_HELP.get(name, "")] for name, value in metrics.items()]
    group_rows = [[group, *(format_value(values.get(c)) for c in GROUP_COLUMNS), values.get("ranked_against", "")]
                  for group, values in groups.items()]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Deepfake evaluation</title><style>",
        "body{font-family:sans-serif;margin:2em} td,th{padding:2px 10px;text-align:left} "
        ".crops{display:flex;flex-wrap:wrap} .crop{margin:3px;text-align:center;font-size:11px}</style></head><body>",
        "<h1>Evaluation</h1><h2>What was evaluated</h2>",
        _table(["input", "value"], [[k, v] for k, v in inputs.items()]),
        "<h2>Metrics (video level unless named)</h2>", _table(["metric", "value", "meaning"], metric_rows),
    ]
    if group_rows:
        parts += ["<h2>Per group</h2><p>A group holding one class only (a manipulation method's fakes) is ranked "
                  "against every video of the other class for AUC, AP and EER; its log losses are over its own "
                  "videos.</p>", _table(["group", *GROUP_COLUMNS, "ranked against"], group_rows)]
    parts += ["".join(f"<p>{html.escape(n)}</p>" for n in notes), "".join(_img_tag(p) for p in images),
              f"<h2>Most confident mistakes ({len(mistakes)})</h2>"]
    for row in mistakes.itertuples():
        truth = "FAKE" if row.y == 1 else "REAL"
        name = html.escape(row.filename)
        if pages and row.filename in pages:
            name = f'<a href="{pages[row.filename]}">{name}</a>'
        parts.append(f"<h3>{name}: {truth}, predicted P(fake) = {row.p:.4f}</h3>")
        parts.append(_crop_cells(crops, row.filename))
    parts.append("</body></html>")
    atomic_write_bytes(path, "\n".join(parts).encode())
