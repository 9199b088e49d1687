"""Confident against per_person on a demo holdout, from two predict_folder.py runs (one per aggregation).

    python -m bench.people --data demo_data --part dfdc_train_part_0 \\
        --confident demo_output/predictions.csv --per-person demo_output/per_person.csv

Prints video AUC and log loss of each aggregation on all clips and on the two-person clips alone, and the share
of two-person fakes whose changed person (demo_two_person_clips.json) gets the higher per-person score.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from core.cli import HelpFormatter
from demo.make_demo_dataset import PAIR_HALF_SIZE, PAIRS_NAME
from inference.metrics import compute_metrics


def read_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


def read_people(path: Path) -> dict[str, list[dict]]:
    people: dict[str, list[dict]] = {}
    with open(Path(f"{path}.people.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            people.setdefault(row["filename"], []).append(row)
    return people


def side_of(person: dict) -> str:
    centre = (float(person["x1"]) + float(person["x2"])) / 2
    return "left" if centre < PAIR_HALF_SIZE[0] else "right"


def changed_person_wins(people: list[dict], changed: str) -> bool | None:
    """True when the changed side's person scores above every other person (None: that side was not tracked)."""
    scores = {}
    for person in people:
        scores.setdefault(side_of(person), []).append(float(person["score"]))
    if changed not in scores or len(scores) < 2:
        return None
    others = [s for side, values in scores.items() if side != changed for s in values]
    return max(scores[changed]) > max(others)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the demo dataset root (demo_data)")
    parser.add_argument("--part", default="dfdc_train_part_0", help="the holdout part that was predicted")
    parser.add_argument("--confident", type=Path, required=True, help="predictions CSV scored with confident")
    parser.add_argument("--per-person", type=Path, required=True, help="predictions CSV scored with per_person")
    args = parser.parse_args(argv)
    labels = {name: int(info["label"] == "FAKE")
              for name, info in json.loads((args.data / args.part / "metadata.json").read_text()).items()}
    pairs = json.loads((args.data / PAIRS_NAME).read_text())
    runs = {"confident": read_scores(args.confident), "per_person": read_scores(args.per_person)}
    print("| aggregation | clips | videos | video AUC | log loss |")
    print("|---|---|---|---|---|")
    for aggregation, scores in runs.items():
        for subset, names in (("all", sorted(labels)), ("two-person", sorted(n for n in labels if n in pairs))):
            y = np.array([labels[n] for n in names])
            p = np.array([scores[n] for n in names])
            metrics = compute_metrics(y, p)
            auc = "undefined" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.3f}"
            print(f"| {aggregation} | {subset} | {len(names)} | {auc} | {metrics['log_loss']:.4f} |")
    people = read_people(args.confident)
    outcomes = [changed_person_wins(people.get(name, []), record["changed"])
                for name, record in pairs.items() if name in labels and record["changed"]]
    decided = [o for o in outcomes if o is not None]
    print(f"\nchanged person scored highest in {sum(decided)} of {len(decided)} two-person fakes "
          f"({len(outcomes) - len(decided)} without both people tracked)")


if __name__ == "__main__":
    main()
