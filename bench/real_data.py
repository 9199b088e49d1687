"""Figures on real deepfakes: FF++ c40 with identities held out by part (train on parts 1-4, score part 0).

    python bench/real_data.py --work-dir /tmp/real_data [--source ../shared/data/ffpp_c40] [--quick]

Runs, on the same split and the same small encoder (configs/sbi_cpu.json), on the CPU:
  (a) winner  the original's recipe: reals plus their fakes (the fakes' crops, cut-outs, confident aggregation)
  (b) sbi     reals only, each with a self-blended fake made on the fly ("fakes": "sbi")
  (c) sbi+cal (b)'s scores with a temperature and bias (evaluate.py --fit-calibration), measured on the videos
              each fit did not see (k-fold cross-validation over part 0); a monotone map, so (b)'s ranking.
  (d) winner+mixup    (a) with aligned-pair mixup ("pair_mixup": {"alpha": 0.5, "p": 0.5})
  (e) winner+reencode (a) also trained on one re-encoded copy of every training video
              (preprocessing.reencode_variants, then "reencode_variants": true)
--override KEY=VALUE adds a trainer config override to every run (e.g. 'sbi.blend_ratios=[1]'); it needs --name,
which keeps those results apart in WORK_DIR/NAME/ (a rerun with other overrides under the same name is refused).
--seeds repeats every run per seed; the report then gives the mean and the spread (min-max) over the seeds.
--robustness SPEC ... scores part 0 again under each perturbation (bench/robustness.py, one line per run and seed)
and prints each run's AUC and log loss per perturbation, mean and spread over the seeds.
Prints video AUC per manipulation method (each method's fakes ranked against all part-0 reals), overall AUC, log
loss and balanced log loss, and the training time. It is a benchmark: nothing asserts on its figures.

Stages, each cached in --work-dir and skipped on a rerun: link (the source is never written to), preprocess
(preprocess_data.sh with one fold per part), train (the trainer's --resume last), predict (predict_folder.py
resumes), evaluate. --quick makes a smoke run (tiny training and 4 frames per video) in WORK_DIR/quick/, reusing
the preprocessed data.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from core.atomic import atomic_write_json
from core.cli import HelpFormatter, command_text
from core.layout import load_dataset
from preprocessing.link_dataset import link_dataset
from training.tools.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SOURCE = Path("../shared/data/ffpp_c40")  # beside the checkout, run from its root
CONFIG = REPO_ROOT / "configs" / "sbi_cpu.json"
TEST_PART = 0
FOLDS_PER_PART = 50  # generate_folds --n-splits 50: fold = part, so --fold 0 trains on parts 1-4
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
WINNER = ["fakes=dataset", "inference.aggregation=confident"]
RUNS = {  # run name -> trainer config overrides
    "winner": WINNER,
    "sbi": [],
    "winner+mixup": [*WINNER, 'pair_mixup={"alpha": 0.5, "p": 0.5}'],
    "winner+reencode": [*WINNER, "reencode_variants=true"],
}
NEEDS_VARIANTS = {"winner+reencode"}
DEFAULT_SEED = 111
QUICK_OVERRIDES = ["schedule.epochs=1", "batches_per_epoch=3", "size=96"]
QUICK_FRAMES = 4


def log(message: str) -> None:
    print(f"[real_data {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def run(command: list, threads: int, log_file: Path | None = None) -> float:
    """Run a repository command from the repository root; returns its wall time. Output goes to log_file."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    started = time.time()
    log(f"$ {' '.join(map(str, command))}" + (f"  (log: {log_file})" if log_file else ""))
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a") as out:
            code = subprocess.call([str(c) for c in command], cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
    else:
        code = subprocess.call([str(c) for c in command], cwd=REPO_ROOT, env=env)
    if code != 0:
        raise SystemExit(f"error: {command[1] if len(command) > 1 else command[0]} exited {code}"
                         + (f"; see {log_file}" if log_file else ""))
    return time.time() - started


def timed_stage(record: Path, work, *args) -> dict:
    """Run work(*args) unless `record` says it finished; returns the record {seconds, load_before, load_after}."""
    if record.is_file():
        return json.loads(record.read_text())
    before = load_average()
    seconds = work(*args)
    result = {"seconds": round(seconds, 1), "load_before": before, "load_after": load_average()}
    atomic_write_json(record, result)
    return result


# ---------------------------------------------------------------- data

def preprocess(data: Path, workers: int) -> float:
    return run(["bash", "preprocess_data.sh", data, "--workers", workers, "--n-splits", FOLDS_PER_PART],
               threads=1, log_file=data.parent / "preprocess.log")


def add_variants(data: Path, workers: int) -> float:
    """One re-encoded copy of every training video (parts 1-4), then their boxes, crops and folds."""
    seconds = run([sys.executable, "-m", "preprocessing.reencode_variants", "--root-dir", data, "--variants", 1,
                   "--n-splits", FOLDS_PER_PART, "--holdout-fold", TEST_PART, "--workers", workers],
                  threads=1, log_file=data.parent / "preprocess.log")
    return seconds + preprocess(data, workers)


def method_of(source: Path) -> dict[str, str]:
    """File name -> manipulation method (from PROVENANCE.csv's source path), "real" for reals."""
    groups = {}
    with open(source / "PROVENANCE.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["path"]).name
            found = [m for m in METHODS if f"/{m}/" in row["source_path"]]
            groups[name] = found[0] if row["label"] == "FAKE" and found else "real" if row["label"] == "REAL" \
                else "unknown"
    return groups


def write_labels(source: Path, data: Path, out: Path) -> Path:
    """filename,label,group of the test part's videos (evaluate.py --labels)."""
    groups = method_of(source)
    rows = [(e.name, e.label, groups.get(e.name, "unknown"))
            for e in load_dataset(data).values() if e.part == TEST_PART]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("filename", "label", "group"))
        writer.writerows(sorted(rows))
    return out


# ---------------------------------------------------------------- runs

def checkpoint_name(run_name: str) -> str:
    return f"{run_name}_DeepFakeClassifier_efficientnet_lite0_0_last"


def run_folder(runs_root: Path, run_name: str, seed: int) -> Path:
    """WORK/<run> for the default seed (as before seeds existed), WORK/<run>_seed<S> for the others."""
    return runs_root / (run_name if seed == DEFAULT_SEED else f"{run_name}_seed{seed}")


def run_overrides(run_name: str, args: argparse.Namespace) -> list[str]:
    """The trainer's --override values of one run: its recipe, then --quick's, --epochs and the user's."""
    overrides = RUNS[run_name] + (QUICK_OVERRIDES if args.quick else [])
    if args.epochs:
        overrides.append(f"schedule.epochs={args.epochs}")
    return overrides + args.override


def check_overrides(runs_root: Path, args: argparse.Namespace) -> None:
    """Before any work: every run's config loads, and a named results folder keeps the overrides it was made with."""
    for run_name in args.runs:
        try:
            load_config(CONFIG, run_overrides(run_name, args))
        except ConfigError as err:
            raise SystemExit(f"error: run {run_name}: {err}") from None
    if not args.override:
        return
    record = runs_root / "overrides.json"
    made_with = json.loads(record.read_text()) if record.is_file() else args.override
    if made_with != args.override:
        raise SystemExit(f"error: {runs_root} holds runs made with --override {made_with}, not {args.override}: "
                         f"choose another --name")
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, args.override)


def train(run_dir: Path, run_name: str, data: Path, args: argparse.Namespace, seed: int) -> float:
    overrides = run_overrides(run_name, args)
    command = [sys.executable, "training/pipelines/train_classifier.py", "--config", CONFIG, "--data-dir", data,
               "--fold", TEST_PART, "--seed", seed, "--prefix", f"{run_name}_", "--output-dir",
               run_dir / "weights", "--logdir", run_dir / "logs", "--workers", args.loader_workers,
               "--test-every", 1000, "--resume", "last", "--device", "cpu"]
    for override in overrides:
        command += ["--override", override]
    return run(command, threads=args.threads, log_file=run_dir / "train.log")


def predict(run_dir: Path, run_name: str, data: Path, args: argparse.Namespace) -> float:
    command = [sys.executable, "predict_folder.py", "--weights-dir", run_dir / "weights", "--models",
               checkpoint_name(run_name), "--test-dir", data / f"dfdc_train_part_{TEST_PART}", "--output",
               run_dir / "predictions.csv", "--device", "cpu", "--workers", args.workers]
    if args.quick:
        command += ["--frames-per-video", QUICK_FRAMES]
    return run(command, threads=args.threads, log_file=run_dir / "predict.log")


def evaluate(run_dir: Path, labels: Path, calibrate: bool, threads: int) -> dict:
    command = [sys.executable, "evaluate.py", "--predictions", run_dir / "predictions.csv", "--labels", labels,
               "--out-dir", run_dir / "eval"]
    if calibrate:
        command += ["--fit-calibration", run_dir / "calibration.json"]
    run(command, threads=threads, log_file=run_dir / "evaluate.log")
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    if calibrate:
        metrics["calibration"] = json.loads((run_dir / "calibration.json").read_text())
    return metrics


# ---------------------------------------------------------------- report

def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def mean_spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def seed_rows(results: dict) -> list[list[str]]:
    """One row per run over its seeds: mean (min-max) of each figure."""
    rows = []
    for run_name, per_seed in results.items():
        metrics = [m for m, _t in per_seed.values()]
        per_method = [mean_spread([m["groups"].get(g, {}).get("roc_auc") for m in metrics]) for g in METHODS]
        minutes = [t["seconds"] / 60 for _m, t in per_seed.values()]
        rows.append([f"{run_name} ({len(per_seed)} seeds)", *per_method,
                     *(mean_spread([m[k] for m in metrics]) for k in ("roc_auc", "log_loss", "balanced_log_loss")),
                     f"{sum(minutes) / len(minutes):.1f} min mean"])
    return rows


def report_rows(results: dict) -> list[list[str]]:
    rows = []
    for run_name, (metrics, times) in results.items():
        per_method = [fmt(metrics["groups"].get(m, {}).get("roc_auc")) for m in METHODS]
        rows.append([run_name, *per_method, fmt(metrics["roc_auc"]), fmt(metrics["log_loss"]),
                     fmt(metrics["balanced_log_loss"]), f"{times['seconds'] / 60:.1f} min (load {times['load_before']}"
                                                       f" -> {times['load_after']})"])
        if "calibration" in metrics:
            cv = metrics["calibration"]["cross_validation"]
            rows.append([f"{run_name}+cal ({cv['folds']}-fold CV)", *per_method, fmt(metrics["roc_auc"]),
                         fmt(cv["log_loss_after"]), fmt(cv["balanced_log_loss_after"]), "+ fit < 1 s"])
    return rows


def print_report(results: dict, labels: Path, args: argparse.Namespace) -> None:
    """results: run -> seed -> (metrics, times); one row per run and seed, then mean (min-max) rows."""
    header = ["run", *METHODS, "all AUC", "log loss", "bal. log loss", "training time"]
    rows = report_rows({f"{run}" + (f" seed {seed}" if len(args.seeds) > 1 else ""): result
                        for run, per_seed in results.items() for seed, result in per_seed.items()})
    if len(args.seeds) > 1:
        rows += seed_rows(results)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\nFF++ c40, train parts 1-4, test part {TEST_PART} ({labels}); video AUC per method = its fakes vs all "
          f"part-{TEST_PART} reals; {os.cpu_count()} cores, --threads {args.threads}"
          + (", QUICK smoke run (not a result)" if args.quick else "")
          + (f", {args.epochs} epochs instead of the config's" if args.epochs else "")
          + (f", overrides {' '.join(args.override)}" if args.override else ""))
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True, help="links, preprocessing, checkpoints, results")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the FF++ c40 set in the DFDC layout")
    parser.add_argument("--runs", nargs="+", default=["winner", "sbi"], choices=list(RUNS),
                        help="which trainings; sbi also reports sbi+cal")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny training, 4 frames per video")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train this many epochs instead of the config's (results go to WORK_DIR/epochs<N>/)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a trainer config override for every run (repeatable); needs --name")
    parser.add_argument("--name", default=None,
                        help="results go to WORK_DIR/NAME/ instead of WORK_DIR/[epochs<N>/]")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing and predict_folder worker processes")
    parser.add_argument("--loader-workers", type=int, default=1, help="DataLoader workers of the trainer")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads of training and prediction (on a busy machine 1 is faster: a 2-thread "
                             "team stalls whenever one of its threads is descheduled)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED], help="train every run per seed")
    parser.add_argument("--robustness", nargs="+", default=None, metavar="SPEC",
                        help="also score part 0 under these perturbations (bench/robustness.py specs, e.g. none "
                             "crf:30 scale:0.5 messenger)")
    args = parser.parse_args(argv)
    if args.override and not args.name:
        parser.error("--override needs --name, so that its results do not mix with the runs made without it")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.source / "PROVENANCE.csv").is_file():
        raise SystemExit(f"error: {args.source} does not hold the FF++ c40 set (no PROVENANCE.csv)")
    work = args.work_dir.resolve()
    runs_root = work / (args.name or ("quick" if args.quick else f"epochs{args.epochs}" if args.epochs else ""))
    check_overrides(runs_root, args)
    data = work / "data"
    if not data.is_dir():
        link_dataset(args.source, data)
    prep = timed_stage(work / "preprocess.json", preprocess, data, args.workers)
    log(f"preprocessing: {prep['seconds']:.0f} s (load {prep['load_before']} -> {prep['load_after']})")
    if NEEDS_VARIANTS & set(args.runs):
        prep = timed_stage(work / "preprocess_variants.json", add_variants, data, args.workers)
        log(f"re-encoded copies and their preprocessing: {prep['seconds']:.0f} s")
    labels = write_labels(args.source, data, runs_root / "labels.csv")
    results: dict[str, dict] = {}
    for run_name in args.runs:
        for seed in args.seeds:
            run_dir = run_folder(runs_root, run_name, seed)
            times = timed_stage(run_dir / "train.json", train, run_dir, run_name, data, args, seed)
            log(f"{run_name} seed {seed}: trained in {times['seconds']:.0f} s")
            if not (run_dir / "predict.json").is_file():
                timed_stage(run_dir / "predict.json", predict, run_dir, run_name, data, args)
            results.setdefault(run_name, {})[seed] = (
                evaluate(run_dir, labels, calibrate=run_name == "sbi", threads=args.threads), times)
    print_report(results, labels, args)
    if args.robustness:
        robustness(runs_root, data, labels, args)
    return 0


def robustness(runs_root: Path, data: Path, labels: Path, args: argparse.Namespace) -> None:
    """bench/robustness.py over every run and seed (one recipe each), then mean (min-max) over the seeds."""
    command = [sys.executable, "bench/robustness.py", "--test-dir", data / f"dfdc_train_part_{TEST_PART}",
               "--labels", labels, "--work-dir", runs_root / "robustness", "--device", "cpu",
               "--workers", args.workers, "--perturbations", *args.robustness]
    for run_name in args.runs:
        for seed in args.seeds:
            run_dir = run_folder(runs_root, run_name, seed)
            command += ["--models", run_dir / "weights" / checkpoint_name(run_name),
                        "--recipe", f"{run_name}/seed{seed}"]
    if args.quick:
        command += ["--frames-per-video", QUICK_FRAMES]
    run(command, threads=args.threads, log_file=runs_root / "robustness.log")
    with open(runs_root / "robustness" / "robustness.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    print(f"\nRobustness (part {TEST_PART}, {runs_root / 'robustness'}): mean (min-max) over seeds "
          f"{', '.join(map(str, args.seeds))}")
    print("| run | perturbation | AUC | dAUC | log loss | dlog loss |")
    print("|---|---|---|---|---|---|")
    for run_name in args.runs:
        for spec in args.robustness:
            rows = seed_rows_of(table, run_name, spec)
            cells = [mean_spread(column(rows, key)) for key in ("auc", "d_auc", "log_loss", "d_log_loss")]
            print(f"| {run_name} | {spec} | " + " | ".join(cells) + " |")
    if len(args.seeds) > 1:
        figure = runs_root / "robustness" / "robustness_seeds.png"
        plot_seed_means(table, args, figure)
        log(f"wrote {figure}")


def seed_rows_of(table: list[dict], run_name: str, spec: str) -> list[dict]:
    """The robustness.csv rows of one run (every seed) under one perturbation."""
    return [r for r in table if r["recipe"].split("/")[0] == run_name and r["perturbation"] == spec]


def plot_seed_means(table: list[dict], args: argparse.Namespace, path: Path) -> None:
    """AUC and log loss per perturbation, one line per run: the mean over the seeds, bars from min to max."""
    import matplotlib.pyplot as plt

    from inference.report import save_figure

    figure, axes = plt.subplots(1, 2, figsize=(max(10, 1.1 * len(args.robustness) + 4), 5.5))
    for offset, run_name in enumerate(args.runs):
        for axis, key in zip(axes, ("auc", "log_loss")):
            values = [[v for v in column(seed_rows_of(table, run_name, spec), key) if v is not None]
                      for spec in args.robustness]
            x = [i + 0.06 * (offset - (len(args.runs) - 1) / 2) for i in range(len(values))]
            mean = [sum(v) / len(v) if v else float("nan") for v in values]
            low = [m - min(v) if v else 0 for m, v in zip(mean, values)]
            high = [max(v) - m if v else 0 for m, v in zip(mean, values)]
            axis.errorbar(x, mean, yerr=[low, high], marker="o", capsize=3, label=run_name)
    for axis, name in zip(axes, ("video AUC", "log loss")):
        axis.set_xticks(range(len(args.robustness)), args.robustness, rotation=40, ha="right", fontsize=8)
        axis.set_ylabel(f"{name}, mean and min-max over seeds")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.suptitle(f"FF++ c40 part {TEST_PART}, seeds {', '.join(map(str, args.seeds))}; "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores\n"
                    + command_text(["python bench/real_data.py", *sys.argv[1:]]), fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def column(rows: list[dict], key: str) -> list:
    """A robustness.csv column as floats (None where empty)."""
    return [float(r[key]) if r[key] not in ("", None) else None for r in rows]


if __name__ == "__main__":
    sys.exit(main())
