"""Step 5: folds.csv, one row per face crop: video,file,label,original,frame,fold,track,changed.

The fold comes from the DFDC part number: with sz = 50 // n_splits, fold = min(part // sz, n_splits - 1)
(16 splits: parts 0-2 -> fold 0, the holdout; parts 45-49 -> fold 15). A fake is always in its original's
fold. Every crop that exists is a row: all actors, all frames, and real videos that have no fake.
Rows are shuffled with --seed. Needs the crops of ALL videos, so run it once, after every shard finished.
track: the crop's person (face track); changed: for a fake's crop, 1 when that person was changed, 0 when not
(core/changes.py, from generate_diffs' tracks.json), empty for reals. Both are empty in roots whose boxes were
made before tracks.
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import csv
import io
import json
import logging
import random
from pathlib import Path
from typing import Iterable

from core.atomic import atomic_write_bytes
from core.layout import VideoEntry
from preprocessing.common import RunSummary, is_done
from core.changes import TRACK_CHANGES_FILE, changed_tracks
from core.layout import FOLDS_COLUMNS, FOLDS_FILE, TRACK_COLUMNS, crops_folder, diffs_folder, list_crops, parse_crop_name
from preprocessing.manifest import require, write_manifest
from preprocessing.step import make_parser, refused_settings, start_step

log = logging.getLogger("preprocessing")
STEP = "generate_folds"
DFDC_PARTS = 50


def fold_of_part(part: int, n_splits: int) -> int:
    size = DFDC_PARTS // n_splits
    return min(part // size, n_splits - 1)


def video_folds(entries: dict[str, VideoEntry], n_splits: int, summary: RunSummary) -> dict[str, int]:
    """Fold of every video. A fake whose original is unknown, or in another fold, is named in the summary and
    left out (its rows would have no fold, or leak the original's identity across folds)."""
    folds = {video_id: fold_of_part(entry.part, n_splits) for video_id, entry in entries.items()}
    for entry in entries.values():
        if not entry.is_fake:
            continue
        if entry.original_id not in entries:
            summary.notes["fakes whose original is not listed (left out)"] += 1
            summary.fail(entry.name, f"part {entry.part}: its original {entry.original} is not listed in any "
                                     f"dfdc_train_part_N/metadata.json, so it has no fold; left out of folds.csv")
            del folds[entry.video_id]
        elif folds[entry.original_id] != folds[entry.video_id]:
            original = entries[entry.original_id]
            summary.notes["fakes in another fold than their original (left out)"] += 1
            summary.fail(entry.name, f"part {entry.part} (fold {folds[entry.video_id]}) but its original "
                                     f"{original.name} is in part {original.part} (fold {folds[original.video_id]}): "
                                     f"the identity would leak between folds; left out of folds.csv")
            del folds[entry.video_id]
    return folds


def fake_changes(root: Path, video_id: str, summary: RunSummary) -> dict[int, bool]:
    """{track: changed} of one fake, counted in the summary; {} (empty cells) when generate_diffs measured none."""
    path = diffs_folder(root, video_id) / TRACK_CHANGES_FILE
    if not path.is_file():
        summary.notes["fakes without tracks.json from generate_diffs (changed left empty)"] += 1
        return {}
    changes = changed_tracks({int(track): value for track, value in json.loads(path.read_text()).items()})
    summary.notes["fake tracks"] += len(changes)
    summary.notes["fake tracks found unchanged"] += sum(not changed for changed in changes.values())
    return changes


def fold_rows(root: Path, entries: dict[str, VideoEntry], folds: dict[str, int], summary: RunSummary,
              tracked: bool) -> list[tuple]:
    rows = []
    for video_id in sorted(folds):
        entry = entries[video_id]
        folder = crops_folder(root, video_id)
        if not is_done(folder):
            summary.notes["videos without finished crops (not in folds.csv)"] += 1
            log.warning("generate_folds: %s has no finished crops folder %s; it gets no rows", entry.name, folder)
            continue
        changes = fake_changes(root, video_id, summary) if tracked and entry.is_fake else {}
        for name in list_crops(folder):
            frame, actor = parse_crop_name(name)
            changed = int(changes[actor]) if actor in changes else ""
            rows.append((video_id, name, int(entry.is_fake), entry.original_id, frame, folds[video_id],
                         actor if tracked else "", changed))
        summary.done += 1
    return rows


def csv_bytes(rows: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FOLDS_COLUMNS + TRACK_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def main(argv: Iterable[str] | None = None) -> RunSummary:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"output CSV (default: DATA_ROOT/{FOLDS_FILE})")
    parser.add_argument("--n-splits", type=int, default=16, help="number of folds over the 50 DFDC parts")
    parser.add_argument("--seed", type=int, default=777, help="seed of the row shuffle")
    args = parser.parse_args(argv)
    if not 1 <= args.n_splits <= DFDC_PARTS:
        parser.error(f"--n-splits must be between 1 and {DFDC_PARTS}")
    entries, summary = start_step(args, STEP)
    with refused_settings():
        crops = require(args.root_dir, "extract_crops", STEP)
    if args.num_shards > 1:
        log.info("generate_folds covers all videos; --num-shards/--shard-index are ignored")
    out = args.out or args.root_dir / FOLDS_FILE
    folds = video_folds(entries, args.n_splits, summary)
    tracked = "tracker" in crops["boxes"]
    if not tracked:
        log.warning("generate_folds: the boxes under %s were made before tracks, so the track and changed columns "
                    "stay empty; rerun preprocess_data.sh on a fresh root to get them", args.root_dir)
    rows = fold_rows(args.root_dir, entries, folds, summary, tracked)
    random.Random(args.seed).shuffle(rows)
    content = csv_bytes(rows)
    if out.is_file() and out.read_bytes() == content:
        summary.skipped, summary.done = summary.done, 0
        log.info("%s is already up to date", out)
    else:
        atomic_write_bytes(out, content)
        summary.notes[f"rows written to {out}"] = len(rows)
    write_manifest(args.root_dir, STEP, {"n_splits": args.n_splits, "seed": args.seed, "out": str(out), "crops": crops},
                   {row[0] for row in rows}, merge=False)
    summary.report()
    return summary


if __name__ == "__main__":
    main()
