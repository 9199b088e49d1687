"""Score predictions against labels: metrics on stdout, metrics.json, plots and an HTML report of the worst mistakes.

    python evaluate.py --predictions submission.csv --labels DATA/dfdc_train_part_0/metadata.json [--out-dir eval]
    python evaluate.py --predictions ffpp.csv --dataset FFPP_ROOT [--split test.json] [--compression c23]
    python evaluate.py --predictions holdout.csv --labels labels.csv --fit-calibration calibration.json

Labels: --labels takes metadata.json files (label REAL/FAKE; group = the folder) and/or CSV files (filename,label
with 0/1 or REAL/FAKE, and an optional group column); --dataset takes a FaceForensics++, Celeb-DF v2 or DFDC root
(layout detected; labels, groups and row names as predict_folder.py --dataset writes them; see core/datasets.py).

Metrics (video level): ROC AUC, average precision, EER, log loss, balanced log loss, accuracy, ECE, overall and per
group (a one-class group, e.g. an FF++ method's fakes, is ranked against every video of the other class); frame-level
AUC over the crop scores of <predictions>.crops.csv (or --crops). A metric a missing class makes undefined is null
in metrics.json, with a note.

Evidence: when predict_folder.py --report wrote a report for exactly these predictions (recorded in
<predictions>.report.json), each listed mistake in report.html links to its video page there.

Calibration: --fit-calibration OUT.json fits p' = sigmoid(logit(p) / T + b) on the labelled, scored videos, prints
the log loss before and after on data each fit did not see (k-fold cross-validation), and writes OUT.json with the
checkpoints the predictions were made with (from the predictions' progress file, or --checkpoint). Apply it with
predict_folder.py --calibration OUT.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.atomic import atomic_write_json
from core.cli import HelpFormatter
from core.damage import named_errors
from core.datasets import DatasetError, load_collection, parse_label
from core.layout import read_metadata
from inference import evidence, resume
from inference.calibration import (CalibrationError, applied_record, cross_validated, fit_calibration, read_applied,
                                   write_calibration)
from inference.metrics import compute_metrics, group_metrics, undefined_notes
from inference.outputs import crops_path, errors_path
from inference.report import format_value, plot_histogram, plot_roc, write_html

NO_GROUP = "all"
LABELS_REMEDY = "fix it, or write it again (one row per video: filename,label with REAL/FAKE or 0/1)"


def read_labels(paths: list[Path]) -> pd.DataFrame:
    """filename, y (1 = fake), group from metadata.json and CSV label files."""
    rows: dict[str, tuple[int, str]] = {}
    for path in paths:
        if path.suffix == ".json":
            entries = [(name, info["label"], path.parent.name) for name, info in read_metadata(path).items()]
        else:
            with named_errors(path, DatasetError, "a labels CSV (filename,label[,group])", LABELS_REMEDY):
                frame = pd.read_csv(path, dtype=str)
            if not {"filename", "label"} <= set(frame.columns):
                raise SystemExit(f"error: {path}: expected columns filename,label[,group], found {list(frame.columns)}")
            groups = frame["group"].fillna(NO_GROUP) if "group" in frame.columns else [NO_GROUP] * len(frame)
            entries = list(zip(frame["filename"], frame["label"], groups))
        for name, label, group in entries:
            value = parse_label(label, f"{path}: {name}")
            if name in rows and rows[name][0] != value:
                raise SystemExit(f"error: {path}: {name} is labelled differently in another labels file")
            rows[name] = (value, group)
    return pd.DataFrame([(name, y, group) for name, (y, group) in rows.items()], columns=["filename", "y", "group"])


def dataset_labels(args: argparse.Namespace) -> pd.DataFrame:
    collection = load_collection(args.dataset, args.split, args.compression)
    print(f"[evaluate] {args.dataset}: {collection.layout} layout, {len(collection.videos)} labelled videos",
          file=sys.stderr)
    return pd.DataFrame([(v.id, v.label, v.group) for v in collection.videos], columns=["filename", "y", "group"])


def read_predictions(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"filename": str})
    if not {"filename", "label"} <= set(frame.columns):
        raise SystemExit(f"error: {path}: expected columns filename,label, found {list(frame.columns)}")
    bad = frame[frame["label"].isna() | (frame["label"] < 0) | (frame["label"] > 1)]
    if not bad.empty:
        raise SystemExit(f"error: {path}: {len(bad)} predictions are missing or outside [0, 1], "
                         f"e.g. {bad['filename'].iloc[0]}")
    return frame.rename(columns={"label": "p"})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--predictions", type=Path, required=True, help="predict_folder.py's CSV (filename,label)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", type=Path, nargs="+", help="metadata.json and/or filename,label[,group] CSV files")
    labels.add_argument("--dataset", type=Path, help="a FaceForensics++, Celeb-DF v2 or DFDC root (layout detected)")
    parser.add_argument("--split", default=None,
                        help="with --dataset: FF++ split file (test.json); Celeb-DF test, train or a list file")
    parser.add_argument("--compression", default=None, help="with --dataset: FF++ compression folder (c23, c40, raw)")
    parser.add_argument("--out-dir", type=Path, default=None, help="report folder; when None, <predictions>_eval/")
    parser.add_argument("--crops", type=Path, default=None,
                        help="crop scores; when None, <predictions>.crops.csv if present")
    parser.add_argument("--top-mistakes", type=int, default=10,
                        help="most confident mistakes shown in report.html with their face crops")
    parser.add_argument("--fit-calibration", type=Path, default=None, metavar="OUT.json",
                        help="fit a temperature and bias on these labelled scores and write them here")
    parser.add_argument("--calibration-folds", type=int, default=5,
                        help="k of the k-fold cross-validation that measures the calibration on unseen videos")
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                        help="checkpoints the predictions were made with, recorded in the calibration file "
                             "(when None, from <predictions>.progress.jsonl)")
    args = parser.parse_args(argv)
    if args.dataset is None and (args.split or args.compression):
        parser.error("--split and --compression need --dataset")
    if args.fit_calibration is None and args.checkpoint:
        parser.error("--checkpoint is recorded in a calibration file: it needs --fit-calibration")
    if args.calibration_folds < 2:
        parser.error("--calibration-folds must be at least 2")
    return args


def missing_inputs(args: argparse.Namespace) -> list[str]:
    """One line per input file or folder that does not exist, checked before any work."""
    problems = []
    if not args.predictions.is_file():
        problems.append(f"--predictions {args.predictions}: file not found")
    for path in args.labels or []:
        if not path.is_file():
            problems.append(f"--labels {path}: file not found")
    if args.dataset is not None and not args.dataset.is_dir():
        problems.append(f"--dataset {args.dataset}: folder not found")
    if args.split is not None and args.split not in ("test", "train") and not Path(args.split).is_file():
        problems.append(f"--split {args.split}: file not found")
    if args.crops is not None and not args.crops.is_file():
        problems.append(f"--crops {args.crops}: file not found")
    for path in args.checkpoint or []:
        if not path.is_file():
            problems.append(f"--checkpoint {path}: file not found")
    return problems


def frame_metrics(crops: pd.DataFrame | None, labels: pd.DataFrame) -> dict:
    """Frame-level AUC: every crop labelled as its video."""
    if crops is None:
        return {}
    labelled = crops.merge(labels[["filename", "y"]], on="filename")
    values = compute_metrics(labelled["y"].to_numpy(), labelled["score"].to_numpy())
    return {"frame_roc_auc": values["roc_auc"], "crops": len(labelled)}


def checkpoints_of(args: argparse.Namespace, run_key: dict | None) -> list[dict] | None:
    if args.checkpoint:
        return [resume.checkpoint_identity(path) for path in args.checkpoint]
    return run_key["models"] if run_key else None


def fit_and_report_calibration(args: argparse.Namespace, joined: pd.DataFrame, unscored: set[str],
                               run_key: dict | None, inputs: dict) -> None:
    """Fit on every labelled scored video; measure by k-fold cross-validation; write the file."""
    scored = joined[~joined["filename"].isin(unscored)]
    y, p = scored["y"].to_numpy(), scored["p"].to_numpy()
    try:
        calibration = fit_calibration(y, p)
        out_of_fold, folds = cross_validated(y, p, args.calibration_folds)
    except CalibrationError as err:
        raise SystemExit(f"error: --fit-calibration: {err}") from None
    before, after = compute_metrics(y, p), compute_metrics(y, out_of_fold)
    checkpoints = checkpoints_of(args, run_key)
    check = {"folds": folds, "videos": len(y)}
    for name in ("log_loss", "balanced_log_loss"):
        check[f"{name}_before"], check[f"{name}_after"] = before[name], after[name]
    fitted_on = {"predictions": inputs["predictions"], "labels": inputs["labels"], "videos": len(y),
                 "fakes": int(y.sum()), "reals": int(len(y) - y.sum())}
    write_calibration(args.fit_calibration, calibration, checkpoints, fitted_on, check)
    print(f"[calibration] temperature {calibration.temperature:.4f}, bias {calibration.bias:+.4f} "
          f"(fitted on {len(y)} scored videos; {len(unscored & set(joined['filename']))} unscored left out)",
          file=sys.stderr)
    print(f"[calibration] on videos each fit did not see ({folds}-fold cross-validation): log loss "
          f"{format_value(before['log_loss'])} -> {format_value(after['log_loss'])}, balanced log loss "
          f"{format_value(before['balanced_log_loss'])} -> {format_value(after['balanced_log_loss'])}",
          file=sys.stderr)
    if after["log_loss"] > before["log_loss"]:
        print("[calibration] warning: calibrated scores did worse on unseen videos than the raw ones; the holdout "
              "is probably too small to fit on (the file is written, but do not apply it)", file=sys.stderr)
    if checkpoints is None:
        print("[calibration] note: the checkpoints are unknown (no progress file, no --checkpoint); "
              "predict_folder.py will apply this file to any model", file=sys.stderr)
    print(f"[calibration] wrote {args.fit_calibration}", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    problems = missing_inputs(args)
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        applied = read_applied(args.predictions)
        run_key = resume.recorded_run_key(args.predictions)
    except (CalibrationError, resume.ProgressFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if applied and args.fit_calibration:
        print(f"error: --fit-calibration: {args.predictions} holds calibrated scores "
              f"({applied_record(args.predictions)}); fit on the uncalibrated predictions "
              "(rerun predict_folder.py without --calibration)", file=sys.stderr)
        return 2
    out_dir = args.out_dir or args.predictions.with_name(args.predictions.stem + "_eval")
    predictions = read_predictions(args.predictions)
    try:
        labels = dataset_labels(args) if args.dataset else read_labels(args.labels)
    except ValueError as err:  # DatasetError and core.layout's metadata errors name the file
        raise SystemExit(f"error: {err}") from None
    predicted = set(predictions["filename"])
    without_label = sorted(predicted - set(labels["filename"]))
    without_prediction = sorted(set(labels["filename"]) - predicted)
    joined = predictions.merge(labels, on="filename")
    if joined.empty:
        raise SystemExit("error: no prediction has a label (do the file names match? predict_folder.py --dataset "
                         "names rows by the ids evaluate.py --dataset expects)")
    y, p = joined["y"].to_numpy(), joined["p"].to_numpy()
    crops_file = args.crops or crops_path(args.predictions)
    crops = pd.read_csv(crops_file, dtype={"filename": str}) if crops_file.is_file() else None
    errors_file = errors_path(args.predictions)
    unscored = set(pd.read_csv(errors_file, dtype={"filename": str})["filename"]) if errors_file.is_file() else set()

    metrics = compute_metrics(y, p)
    metrics.update(frame_metrics(crops, labels))
    metrics["predictions_without_label"] = len(without_label)
    metrics["labels_without_prediction"] = len(without_prediction)
    metrics["predicted_exactly_0.5"] = int((joined["p"] == 0.5).sum())
    groups = group_metrics(y, p, joined["group"].to_numpy()) if joined["group"].nunique() > 1 else {}
    notes = undefined_notes(metrics)
    if without_label:
        notes.append(f"{len(without_label)} predictions have no label (ignored): {', '.join(without_label[:10])}")
    if without_prediction:
        notes.append(f"{len(without_prediction)} labelled videos have no prediction (ignored): "
                     f"{', '.join(without_prediction[:10])}")
    if unscored:
        notes.append(f"{len(unscored)} videos were not scored (0.5), see {errors_file}")
    inputs = {"predictions": str(args.predictions),
              "labels": f"--dataset {args.dataset}" + (f" --split {args.split}" if args.split else "")
              if args.dataset else ", ".join(map(str, args.labels)),
              "crops": str(crops_file) if crops is not None else "none",
              "checkpoints": ", ".join(m["name"] for m in run_key["models"]) if run_key
              else "unknown (no progress file beside the predictions)",
              "calibration": f"temperature {applied['temperature']:.4f}, bias {applied['bias']:+.4f} from "
              f"{applied['source']}" if applied else "none (raw model scores)"}

    for key, value in metrics.items():
        print(f"{key:28s} {format_value(value)}")
    if groups:
        columns = ("videos", "fakes", "reals", "roc_auc", "average_precision", "eer", "log_loss", "balanced_log_loss")
        print(f"\n{'group':28s} " + " ".join(f"{c:>17s}" for c in columns))
        for group, values in groups.items():
            print(f"{group:28s} " + " ".join(f"{format_value(values[c]):>17s}" for c in columns))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", {**metrics, "groups": groups, "inputs": inputs, "notes": notes},
                      indent=1)
    plot_roc(y, p, out_dir / "roc.png", metrics["roc_auc"])
    plot_histogram(y, p, out_dir / "hist.png")
    wrong = joined[(joined["p"] > 0.5).astype(int) != joined["y"]].copy()
    wrong["confidence"] = np.abs(wrong["p"] - 0.5)
    mistakes = wrong.sort_values("confidence", ascending=False).head(args.top_mistakes)
    pages = evidence.page_links(args.predictions, list(mistakes["filename"]), out_dir)
    write_html(out_dir / "report.html", metrics, groups, inputs, notes, mistakes, crops,
               [out_dir / "roc.png", out_dir / "hist.png"], pages)
    print(f"wrote {out_dir / 'metrics.json'}, roc.png, hist.png, report.html", file=sys.stderr)
    if args.fit_calibration:
        fit_and_report_calibration(args, joined, unscored, run_key, inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
