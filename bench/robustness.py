"""How far the score holds: AUC and log loss of a model on perturbed copies of a labelled test set.

    python bench/robustness.py --weights-dir W --models M [M ...] \\
        (--test-dir DIR --labels L [L ...] | --dataset ROOT) \\
        --perturbations none crf:23 crf:30 crf:38 scale:0.5 scale:0.25 fps:0.5 blur:2 noise:8 messenger \\
        --work-dir OUT

Several models or ensembles: repeat --models (each group is one line of the plot), and name them with as many
--recipe labels. Models may be absolute paths (then --weights-dir is ignored for them).

Perturbations (core/perturb.py): none, crf:N, scale:F (down and back up), height:H, fps:F (a factor of the frame
rate), rate:R (at most R fps), blur:SIGMA, noise:SIGMA, messenger (height:480+rate:15+crf:32); compose with +, e.g.
scale:0.5+crf:32. Copies are H.264 (CRF 17 unless the spec says), audio dropped, frame timing kept. `none` scores the
videos themselves, exactly as predict_folder.py does.

Labels: --labels takes metadata.json and/or filename,label[,group] CSV files, --dataset a FF++, Celeb-DF v2 or
DFDC root (with --split, --compression), as evaluate.py does; the metrics are evaluate.py's (inference/metrics.py).

Written under --work-dir, each reused by a rerun (an interrupted run resumes):
    videos/<spec>/          the perturbed copies (a copy appears only when complete)
    scores/<recipe>/<spec>/ predict_folder.py's predictions.csv and its progress file
    robustness.csv          recipe,perturbation,videos,scored,auc,log_loss,balanced_log_loss and the change of
                            each from `none` (d_auc, d_log_loss, d_balanced_log_loss; empty without a none row)
    robustness.png          AUC and log loss against perturbation, one line per recipe
A video that cannot be read or has no face gets 0.5, as in predict_folder.py, and counts in `videos` but not in
`scored`. Exits 2 naming the spec for an unknown perturbation (before any work), and 1 when a perturbation left
no video scored.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

import evaluate
import predict_folder
from core.atomic import atomic_write_bytes
from core.cli import HelpFormatter, command_text
from core.perturb import Perturbation, PerturbationError, parse_spec, write_perturbed
from core.video import VideoReadError
from inference.metrics import compute_metrics
from inference.outputs import UNSCORED_LABEL, errors_path

REPO_ROOT = Path(__file__).resolve().parent.parent

METRICS = ("auc", "log_loss", "balanced_log_loss")
DEFAULT_PERTURBATIONS = ["none", "crf:23", "crf:30", "crf:38", "scale:0.5", "scale:0.25", "fps:0.5", "blur:2",
                         "noise:8", "messenger"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--models", nargs="+", action="append", required=True,
                        help="checkpoint names in --weights-dir (an ensemble); repeat for another recipe")
    parser.add_argument("--recipe", action="append", default=None,
                        help="a name per --models group (default: the checkpoint names)")
    videos = parser.add_mutually_exclusive_group(required=True)
    videos.add_argument("--test-dir", type=Path, help="folder with the videos (needs --labels)")
    videos.add_argument("--dataset", type=Path, help="FF++, Celeb-DF v2 or DFDC root (labels from the layout)")
    parser.add_argument("--labels", type=Path, nargs="+", help="with --test-dir: metadata.json and/or CSV files")
    parser.add_argument("--split", default=None, help="with --dataset: as predict_folder.py")
    parser.add_argument("--compression", default=None, help="with --dataset: as predict_folder.py")
    parser.add_argument("--perturbations", nargs="+", default=DEFAULT_PERTURBATIONS, help="specs, see above")
    parser.add_argument("--work-dir", type=Path, required=True, help="cache and outputs")
    parser.add_argument("--device", default="auto", help="as predict_folder.py")
    parser.add_argument("--workers", type=int, default=2, help="predict_folder.py decoding workers")
    parser.add_argument("--frames-per-video", type=int, default=None, help="override the card's (predict_folder.py)")
    args = parser.parse_args(argv)
    if args.test_dir is not None and not args.labels:
        parser.error("--test-dir needs --labels")
    if args.dataset is None and (args.split or args.compression):
        parser.error("--split and --compression need --dataset")
    if args.recipe is not None and len(args.recipe) != len(args.models):
        parser.error(f"{len(args.recipe)} --recipe names for {len(args.models)} --models groups")
    try:
        args.specs = parse_perturbations(args.perturbations)
    except PerturbationError as err:
        parser.error(f"--perturbations: {err}")
    return args


def parse_perturbations(texts: list[str]) -> list[Perturbation]:
    """Every spec parsed before any work; PerturbationError naming the first bad one."""
    specs = [parse_spec(text) for text in texts]
    slugs = [spec.slug for spec in specs]
    if len(set(slugs)) != len(slugs):
        raise PerturbationError(f"a spec is given twice ({', '.join(texts)})")
    return specs


# ---------------------------------------------------------------- videos and labels

def labelled_videos(args: argparse.Namespace) -> tuple[list[tuple[Path, str]], pd.DataFrame]:
    """(video file, row name) of every video to score, and the labels (filename, y, group)."""
    videos = predict_folder.videos_to_score(args)
    try:
        labels = evaluate.dataset_labels(args) if args.dataset else evaluate.read_labels(args.labels)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return videos, labels


def copy_name(row_name: str) -> str:
    """A flat, unique file name for a row (dataset ids hold folders)."""
    return Path(row_name.replace("/", "__")).with_suffix(".mp4").name


def make_copies(spec: Perturbation, videos: list[tuple[Path, str]], work: Path) -> tuple[Path, dict[str, str]]:
    """The spec's copies under work/videos/<slug>/ (existing ones are kept); returns the folder and
    {copy file name: row name}. A source that cannot be read is named and gets no copy (scored 0.5)."""
    folder = work / "videos" / spec.slug
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for source, row in tqdm(videos, desc=f"[robustness] {spec.text}", unit="video", file=sys.stderr):
        target = folder / copy_name(row)
        if not target.is_file():
            try:
                write_perturbed(source, target, spec)
            except VideoReadError as err:
                print(f"[robustness] {spec.text}: no copy of {row}: {err}", file=sys.stderr)
                continue
        names[target.name] = row
    return folder, names


# ---------------------------------------------------------------- scoring

def predict_argv(args: argparse.Namespace, models: list[str], output: Path, test_dir: Path | None) -> list[str]:
    argv = ["--weights-dir", str(args.weights_dir), "--models", *models, "--output", str(output),
            "--device", args.device, "--workers", str(args.workers)]
    if args.frames_per_video:
        argv += ["--frames-per-video", str(args.frames_per_video)]
    if test_dir is not None:
        return argv + ["--test-dir", str(test_dir)]
    argv += ["--test-dir", str(args.test_dir)] if args.test_dir else ["--dataset", str(args.dataset)]
    for option in ("split", "compression"):
        if getattr(args, option):
            argv += [f"--{option}", getattr(args, option)]
    return argv


def run_predict_folder(argv: list[str]) -> int:
    """predict_folder.py in a process of its own. Called in this process, each call would fork its decoding workers
    from a process whose threads ran the earlier calls, and such a fork can deadlock (seen after five calls)."""
    return subprocess.call([sys.executable, str(REPO_ROOT / "predict_folder.py"), *argv])


def score(args: argparse.Namespace, models: list[str], spec: Perturbation, videos, out: Path) -> pd.DataFrame:
    """filename (row name), p, scored: predict_folder.py on the videos (none) or on the spec's copies."""
    output = out / "predictions.csv"
    if spec.is_identity:
        code = run_predict_folder(predict_argv(args, models, output, None))
        names = None
    else:
        folder, names = make_copies(spec, videos, args.work_dir)
        if not names:
            raise SystemExit(f"error: {spec.text}: no video could be copied (see the messages above)")
        code = run_predict_folder(predict_argv(args, models, output, folder))
    if code:
        raise SystemExit(f"error: predict_folder.py exited {code} on {spec.text}")
    predictions = pd.read_csv(output, dtype={"filename": str}).rename(columns={"label": "p"})
    failed = set(pd.read_csv(errors_path(output), dtype={"filename": str})["filename"])
    predictions["scored"] = ~predictions["filename"].isin(failed)
    if names is not None:
        predictions["filename"] = predictions["filename"].map(names)
        missing = [row for _source, row in videos if row not in set(predictions["filename"])]
        predictions = pd.concat([predictions, pd.DataFrame({"filename": missing, "p": UNSCORED_LABEL,
                                                            "scored": False})], ignore_index=True)
    return predictions


def metrics_row(recipe: str, spec: Perturbation, predictions: pd.DataFrame, labels: pd.DataFrame,
                out: Path) -> dict:
    joined = predictions.merge(labels, on="filename")
    if not joined["scored"].any():
        raise SystemExit(f"error: {recipe}, {spec.text}: no video could be scored (reasons in "
                         f"{errors_path(out / 'predictions.csv')})")
    values = compute_metrics(joined["y"].to_numpy(), joined["p"].to_numpy())
    return {"recipe": recipe, "perturbation": spec.text, "videos": len(joined), "scored": int(joined["scored"].sum()),
            "auc": values["roc_auc"], "log_loss": values["log_loss"], "balanced_log_loss": values["balanced_log_loss"]}


def with_changes(rows: list[dict]) -> pd.DataFrame:
    """d_<metric> = metric - the recipe's `none` value (empty where the recipe has no none row)."""
    table = pd.DataFrame(rows)
    for metric in METRICS:
        clean = table[table["perturbation"] == "none"].set_index("recipe")[metric]
        table[f"d_{metric}"] = table[metric] - table["recipe"].map(clean)
    return table


# ---------------------------------------------------------------- outputs

def print_table(table: pd.DataFrame) -> None:
    def fmt(value, signed=False):
        return "n/a" if pd.isna(value) else f"{value:+.3f}" if signed else f"{value:.3f}"

    header = ["recipe", "perturbation", "scored", "AUC", "dAUC", "log loss", "dlog loss", "bal. log loss",
              "dbal."]
    rows = [[r.recipe, r.perturbation, f"{r.scored}/{r.videos}", fmt(r.auc), fmt(r.d_auc, True),
             fmt(r.log_loss), fmt(r.d_log_loss, True), fmt(r.balanced_log_loss),
             fmt(r.d_balanced_log_loss, True)] for r in table.itertuples()]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def plot(table: pd.DataFrame, order: list[str], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    from inference.report import save_figure

    figure, axes = plt.subplots(1, 2, figsize=(max(10, 1.1 * len(order) + 4), 5.5))
    x = range(len(order))
    for recipe, rows in table.groupby("recipe", sort=False):
        rows = rows.set_index("perturbation").reindex(order)
        for axis, metric in zip(axes, ("auc", "log_loss")):
            axis.plot(x, rows[metric], marker="o", label=recipe)
    for axis, name in zip(axes, ("video AUC", "log loss")):
        axis.set_xticks(list(x), order, rotation=40, ha="right", fontsize=8)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    specs = args.specs
    recipes = args.recipe or ["+".join(Path(m).name for m in models) for models in args.models]
    videos, labels = labelled_videos(args)
    rows = []
    for recipe, models in zip(recipes, args.models):
        for spec in specs:
            out = args.work_dir / "scores" / recipe.replace("/", "_") / spec.slug
            print(f"[robustness] {recipe}: {spec.text}", file=sys.stderr)
            rows.append(metrics_row(recipe, spec, score(args, models, spec, videos, out), labels, out))
    table = with_changes(rows)
    buffer = table.to_csv(index=False, float_format="%.6f")
    atomic_write_bytes(args.work_dir / "robustness.csv", buffer.encode())
    print_table(table)
    source = args.dataset or args.test_dir
    machine = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores, "
               f"load {os.getloadavg()[0]:.1f}")
    plot(table, [spec.text for spec in specs], args.work_dir / "robustness.png",
         f"{source} ({len(videos)} videos): AUC and log loss under each perturbation\n{machine}\n"
         f"{command_text(['python bench/robustness.py', *sys.argv[1:]])}")
    print(f"[robustness] wrote {args.work_dir / 'robustness.csv'} and robustness.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
