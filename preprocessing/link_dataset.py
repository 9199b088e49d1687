"""Mirror a dataset with symlinks in the DFDC layout, so preprocessing can write its outputs beside a read-only copy.

    python -m preprocessing.link_dataset SOURCE_ROOT TARGET_ROOT [--videos a.mp4 b.mp4 ...]

A DFDC-layout SOURCE gives TARGET_ROOT/dfdc_train_part_N/ with a link per video and a metadata.json limited to the
chosen videos. A FaceForensics++ or Celeb-DF v2 SOURCE (see core/datasets.py) is converted: every video becomes a
link in TARGET_ROOT/dfdc_train_part_<k>/ named by its file name (prefixed with its group, e.g.
Deepfakes_000_003.mp4, where file names collide), with a metadata.json giving REAL/FAKE and each fake's original,
so preprocess_data.sh and the trainer run on it unchanged. --parts spreads the identities (an original with its
fakes) over parts 0..N-1 (the folds follow the parts); --reals-only keeps the real videos (enough for SBI training).
A fake whose original is not in the collection is named and left out (it would have no face boxes).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from collections.abc import Iterable

from core.atomic import atomic_write_json
from core.cli import HelpFormatter
from core.datasets import LabelledVideo, load_collection
from core.layout import METADATA_FILE, part_dirs, read_metadata


def _link(path: Path, link: Path) -> None:
    if not link.is_symlink():
        link.symlink_to(Path(path).resolve())


def link_dataset(source: Path, target: Path, videos: Iterable[str] | None = None) -> Path:
    """Link every video (or only those named, by file name) of a DFDC-layout source into target; returns target."""
    wanted = set(videos) if videos is not None else None
    target = Path(target)
    for _part, folder in part_dirs(Path(source)):
        metadata = read_metadata(folder / METADATA_FILE)
        chosen = {name: info for name, info in metadata.items() if wanted is None or name in wanted}
        if not chosen:
            continue
        out = target / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            _link(folder / name, out / name)
        atomic_write_json(out / METADATA_FILE, chosen)
    return target


def flat_names(videos: list[LabelledVideo]) -> dict[str, str]:
    """A file name per video id: its own name, or <group>_<name> where names collide."""
    counts = Counter(video.path.name for video in videos)
    return {video.id: video.path.name if counts[video.path.name] == 1 else f"{video.group}_{video.path.name}"
            for video in videos}


def convert_collection(source: Path, target: Path, split: str | None = None, compression: str | None = None,
                       parts: int = 1, reals_only: bool = False) -> tuple[Path, list[str]]:
    """(target, ids of fakes left out because their original is unknown); see the module docstring."""
    collection = load_collection(source, split, compression)
    videos = [v for v in collection.videos if not (reals_only and v.label)]
    orphans = [v.id for v in videos if v.label and v.original is None]
    videos = [v for v in videos if not (v.label and v.original is None)]
    names = flat_names(collection.videos)
    identities = sorted({v.original or v.id for v in videos})
    part_of = {identity: index % parts for index, identity in enumerate(identities)}
    metadata: dict[int, dict] = {}
    for video in videos:
        part = part_of[video.original or video.id]
        entry = {"label": "FAKE" if video.label else "REAL", "original": names[video.original] if video.label else None}
        metadata.setdefault(part, {})[names[video.id]] = entry
        out = Path(target) / f"dfdc_train_part_{part}"
        out.mkdir(parents=True, exist_ok=True)
        _link(video.path, out / names[video.id])
    for part, entries in metadata.items():
        atomic_write_json(Path(target) / f"dfdc_train_part_{part}" / METADATA_FILE, entries, indent=1)
    return Path(target), orphans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("source", type=Path, help="DFDC, FaceForensics++ or Celeb-DF v2 root")
    parser.add_argument("target", type=Path)
    parser.add_argument("--videos", nargs="*", default=None, help="DFDC source only: file names to keep (None: all)")
    parser.add_argument("--split", default=None, help="FF++ split file (train.json) or Celeb-DF train/test")
    parser.add_argument("--compression", default=None, help="FF++ compression folder (c23, c40, raw)")
    parser.add_argument("--parts", type=int, default=1, help="converted collections: dfdc_train_part_N folders")
    parser.add_argument("--reals-only", action="store_true", help="converted collections: link the real videos only")
    args = parser.parse_args(argv)
    if part_dirs(args.source):
        if args.split or args.compression or args.reals_only or args.parts != 1:
            parser.error("--split, --compression, --parts and --reals-only convert other layouts; "
                         f"{args.source} is already in the DFDC layout")
        link_dataset(args.source, args.target, args.videos)
        return 0
    if args.videos is not None:
        parser.error("--videos selects from a DFDC-layout source only")
    if args.parts < 1:
        parser.error("--parts must be at least 1")
    try:
        target, orphans = convert_collection(args.source, args.target, args.split, args.compression, args.parts,
                                             args.reals_only)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for video_id in orphans:
        print(f"[link_dataset] left out {video_id}: its original is not in {args.source}", file=sys.stderr)
    print(f"[link_dataset] wrote {target} ({len(orphans)} fakes without original left out)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
