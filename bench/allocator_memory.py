"""Resident memory of a CPU training run with and without core.allocator's malloc setting.

    python bench/allocator_memory.py DATA_ROOT [--config configs/demo_cpu.json] [--epochs 12] [--max-seconds 480]
        [--batches-per-epoch N] [--test-every N]

Trains the config (its epochs replaced by --epochs) on a preprocessed dataset twice, one run after the other:
once as every entry point runs (glibc malloc with mmap off and trimming off, core/allocator.py), once with
glibc's defaults (DFDC_DEFAULT_MALLOC=1). Every second it sums VmRSS over the trainer's process tree (the trainer
and its data-loading workers) and also records the trainer's own VmRSS. Each run stops after --max-seconds.
Prints one summary line per run, writes the samples as CSV (--samples-csv) and plots them (--plot).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.allocator import OPT_OUT
from core.cli import HelpFormatter

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINER = REPO_ROOT / "training" / "pipelines" / "train_classifier.py"
SETTINGS = {"steady": {}, "glibc-default": {OPT_OUT: "1"}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("data_dir", type=Path, help="a preprocessed dataset (crops, landmarks, diffs, folds.csv)")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "demo_cpu.json")
    parser.add_argument("--epochs", type=int, default=12, help="replaces the config's schedule.epochs")
    parser.add_argument("--max-seconds", type=float, default=480, help="each run is stopped after this long")
    parser.add_argument("--batches-per-epoch", type=int, help="replaces the config's batches_per_epoch "
                                                              "(default: the config's): more, shorter epochs")
    parser.add_argument("--test-every", type=int, default=1, help="the trainer's validation interval in epochs")
    parser.add_argument("--workers", type=int, default=1, help="the trainer's data-loading workers")
    parser.add_argument("--only", choices=sorted(SETTINGS), help="run one setting only")
    parser.add_argument("--samples-csv", type=Path, help="write every sample (setting, second, MiB) here")
    parser.add_argument("--plot", type=Path, help="PNG of resident memory over time, one line per setting")
    return parser.parse_args(argv)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from the parent pids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def epochs_done(log_dir: Path) -> int:
    metrics = list(log_dir.rglob("metrics.csv"))
    return max((len(path.read_text().splitlines()) - 1 for path in metrics), default=0)


def measure(setting: str, args, work: Path) -> tuple[dict, list[tuple[str, float, float, float]]]:
    config = json.loads(args.config.read_text())
    config["schedule"]["epochs"] = args.epochs
    config_path = work / f"{setting}.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", OPT_OUT)}
    env.update(SETTINGS[setting], OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    out = work / setting
    command = [sys.executable, str(TRAINER), "--config", str(config_path), "--data-dir", str(args.data_dir),
               "--fold", "0", "--seed", "111", "--prefix", "mem_", "--output-dir", str(out / "weights"),
               "--logdir", str(out / "logs"), "--workers", str(args.workers), "--device", "cpu",
               "--test-every", str(args.test_every)]
    if args.batches_per_epoch:
        command += ["--batches-per-epoch", str(args.batches_per_epoch)]
    started = time.monotonic()
    trainer = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    while trainer.poll() is None and time.monotonic() - started < args.max_seconds:
        own = rss_kib(trainer.pid) / 1024
        total = sum(rss_kib(pid) for pid in process_tree(trainer.pid)) / 1024
        samples.append((setting, round(time.monotonic() - started, 1), round(own, 1), round(total, 1)))
        time.sleep(1)
    stopped = trainer.poll() is None
    if stopped:
        trainer.terminate()
    stderr = trainer.communicate(timeout=60)[1].decode(errors="replace")
    if not stopped and trainer.returncode != 0:
        raise SystemExit(f"{setting}: the trainer exited {trainer.returncode}\n{stderr[-3000:]}")
    owns, totals = [s[2] for s in samples], [s[3] for s in samples]
    late = [s for s in samples if s[1] >= samples[-1][1] / 2]  # the second half: growth shows here
    summary = {"setting": setting, "seconds": round(time.monotonic() - started), "epochs": epochs_done(out / "logs"),
               "stopped_at_limit": stopped, "peak_trainer_mib": max(owns), "peak_tree_mib": max(totals),
               "median_tree_second_half_mib": sorted(s[3] for s in late)[len(late) // 2],
               "tree_at_end_mib": totals[-1],
               "tree_growth_second_half_mib": round(late[-1][3] - late[0][3], 1)}
    return summary, samples


def plot_samples(samples: list[tuple[str, float, float, float]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for setting in SETTINGS:
        rows = [row for row in samples if row[0] == setting]
        for ax, column in zip(axes, (2, 3)):
            ax.plot([row[1] for row in rows], [row[column] for row in rows], label=setting, linewidth=1)
    for ax, title in zip(axes, ("trainer process", "trainer + data-loading workers")):
        ax.set(title=f"VmRSS, {title}", xlabel="seconds since start", ylabel="MiB")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = [args.only] if args.only else list(SETTINGS)
    all_samples = []
    with tempfile.TemporaryDirectory(prefix="allocator_memory_") as tmp:
        for setting in settings:
            summary, samples = measure(setting, args, Path(tmp))
            all_samples += samples
            print(json.dumps(summary), flush=True)
    if args.samples_csv:
        with open(args.samples_csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["setting", "second", "trainer_mib", "tree_mib"])
            writer.writerows(all_samples)
    if args.plot:
        plot_samples(all_samples, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
