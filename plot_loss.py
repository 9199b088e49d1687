"""Plot a run's validation losses and pick checkpoints the way the original chose its released ones.

    python plot_loss.py --log-file logs/b7_111            # the trainer's stdout log (fake_loss / real_loss lines)
    python plot_loss.py --metrics logs/<snapshot>/metrics.csv

Per validated epoch: weighted = (FAKE_WEIGHT * fake_loss + real_loss) / 2 with FAKE_WEIGHT 1.4; the TOP (5) lowest
are taken, then epochs <= MIN_EPOCH (16, meant for the 40-epoch B7 runs; -1 keeps all) are dropped, as the
original did, so fewer than TOP may remain. Writes a PNG (default: beside the input, *_loss.png) that marks
those epochs ("original's pick") apart from the last epoch, whose _last checkpoint is what demo.sh predicts with
and what --resume last continues: the two markers answer different questions and need not agree.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from core.cli import HelpFormatter

EPOCH_LINE = re.compile(r"^\[val\] epoch (\d+)")
LOSS_LINE = re.compile(r"^(fake_loss|real_loss)\s+([-+0-9.eE]+|nan)")


def losses_from_log(path: Path) -> dict[int, dict[str, float]]:
    """{epoch: {"fake_loss", "real_loss"}} from a log. Epochs come from '[val] epoch N' lines; a log without them
    (the original's format) numbers its validations 0, 1, 2, ..."""
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines()]
    if not any(EPOCH_LINE.match(line) for line in lines):
        values = {"fake_loss": [], "real_loss": []}
        for line in lines:
            if match := LOSS_LINE.match(line):
                values[match.group(1)].append(float(match.group(2)))
        return {epoch: {"fake_loss": fake, "real_loss": real}
                for epoch, (fake, real) in enumerate(zip(values["fake_loss"], values["real_loss"]))}
    epochs: dict[int, dict[str, float]] = {}
    current = None
    for line in lines:
        if match := EPOCH_LINE.match(line):
            current = int(match.group(1))
        elif (match := LOSS_LINE.match(line)) and current is not None:
            epochs.setdefault(current, {})[match.group(1)] = float(match.group(2))
    return {epoch: parts for epoch, parts in epochs.items() if len(parts) == 2}


def losses_from_metrics(path: Path) -> dict[int, dict[str, float]]:
    epochs = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("fake_loss") and row.get("real_loss"):
                epochs[int(row["epoch"])] = {"fake_loss": float(row["fake_loss"]),
                                             "real_loss": float(row["real_loss"])}
    return epochs


def weighted_losses(epochs: dict[int, dict[str, float]], fake_weight: float) -> dict[int, float]:
    return {epoch: (fake_weight * parts["fake_loss"] + parts["real_loss"]) / 2 for epoch, parts in epochs.items()}


def select_epochs(weighted: dict[int, float], top: int, min_epoch: int) -> list[int]:
    """The `top` lowest weighted losses, then those after min_epoch (the original's order of the two steps)."""
    lowest = sorted(weighted, key=weighted.get)[:top]
    return [epoch for epoch in lowest if epoch > min_epoch]


def plot(epochs: dict[int, dict[str, float]], weighted: dict[int, float], selected: list[int], out: Path,
         title: str, pick_rule: str) -> None:
    from inference.report import save_figure  # first: it selects the Agg backend before pyplot loads

    import matplotlib.pyplot as plt

    xs = sorted(epochs)
    figure, axis = plt.subplots(figsize=(9, 5))
    axis.plot(xs, [epochs[e]["fake_loss"] for e in xs], label="fake_loss", alpha=0.6)
    axis.plot(xs, [epochs[e]["real_loss"] for e in xs], label="real_loss", alpha=0.6)
    axis.plot(xs, [weighted[e] for e in xs], label="weighted (1.4 fake + real) / 2", linewidth=2)
    axis.scatter(selected, [weighted[e] for e in selected], color="red", zorder=3,
                 label=f"original's checkpoint pick: {pick_rule}")
    for epoch in selected:
        axis.annotate(str(epoch), (epoch, weighted[epoch]), textcoords="offset points", xytext=(0, 6), ha="center")
    last = xs[-1]
    axis.scatter([last], [weighted[last]], marker="x", s=80, color="black", zorder=4,
                 label=f"last epoch {last}: the _last checkpoint (demo.sh predicts with it)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation log loss")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--log-file", type=Path, help="trainer stdout log (e.g. logs/b7_111)")
    source.add_argument("--metrics", type=Path, help="metrics.csv of a run")
    parser.add_argument("--fake-weight", type=float, default=1.4)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--min-epoch", type=int, default=16, help="drop selected epochs <= this (-1 keeps all)")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: <input>_loss.png)")
    args = parser.parse_args(argv)

    path = args.log_file or args.metrics
    if not path.is_file():
        print(f"plot_loss: error: {path} not found", file=sys.stderr)
        return 2
    epochs = losses_from_log(path) if args.log_file else losses_from_metrics(path)
    if not epochs:
        print(f"plot_loss: error: {path} has no validation fake_loss/real_loss values", file=sys.stderr)
        return 2
    weighted = weighted_losses(epochs, args.fake_weight)
    selected = select_epochs(weighted, args.top, args.min_epoch)
    out = args.out or path.with_name(f"{path.stem}_loss.png")
    pick_rule = f"lowest {args.top} weighted, then epoch > {args.min_epoch}"
    plot(epochs, weighted, selected, out, title=str(path), pick_rule=pick_rule)
    for epoch in sorted(weighted):
        parts = epochs[epoch]
        print(f"epoch {epoch:3d}  fake {parts['fake_loss']:.4f}  real {parts['real_loss']:.4f}  "
              f"weighted {weighted[epoch]:.4f}{'  <- selected' if epoch in selected else ''}")
    print(f"selected epochs (lowest {args.top} weighted, then > {args.min_epoch}): {selected}")
    print(f"last epoch {max(weighted)}: the _last checkpoint, which demo.sh predicts with (marked x)")
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
