"""Mirror a DFDC-layout dataset with symlinks, so preprocessing can write its outputs beside a read-only copy.

`python -m preprocessing.link_dataset SOURCE_ROOT TARGET_ROOT [--videos a.mp4 b.mp4 ...]` creates
TARGET_ROOT/dfdc_train_part_N/ with a link per video and a metadata.json limited to the chosen videos.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable

from core.atomic import atomic_write_json
from core.layout import METADATA_FILE, part_dirs, read_metadata


def link_dataset(source: Path, target: Path, videos: Iterable[str] | None = None) -> Path:
    """Link every video (or only those named, by file name) of source into target; returns target."""
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
            link = out / name
            if not link.is_symlink():
                link.symlink_to((folder / name).resolve())
        atomic_write_json(out / METADATA_FILE, chosen)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--videos", nargs="*", default=None, help="file names to keep (default: all)")
    args = parser.parse_args(argv)
    link_dataset(args.source, args.target, args.videos)


if __name__ == "__main__":
    main()
