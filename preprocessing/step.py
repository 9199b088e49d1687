"""A step's command from start to finish: parse, load the dataset, check earlier steps' settings, pick this shard,
run the video jobs, record the manifest, exit cleanly."""
from __future__ import annotations

import argparse
import logging
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence

from core.cli import HelpFormatter
from core.layout import VideoEntry, crops_folder, load_dataset, unlisted_videos
from core.processes import run_parallel
from core.video import VideoReadError
from preprocessing.common import RunSummary, add_common_args, is_done, setup_logging, take_shard
from preprocessing.manifest import ManifestError, check_rerun, write_manifest

log = logging.getLogger("preprocessing")


def make_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    add_common_args(parser)
    return parser


def load_entries(args: argparse.Namespace) -> dict[str, VideoEntry]:
    """All metadata entries under --root-dir; a broken layout or metadata file exits with a message naming it."""
    setup_logging()
    try:
        return load_dataset(args.root_dir)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err


UNLISTED = "on disk but not in metadata.json"


def step_inputs(args: argparse.Namespace, step: str) -> tuple[dict[str, VideoEntry], RunSummary]:
    """(entries, summary) of a step that reads no earlier step's settings: the dataset's entries, and the step's
    summary, which already names every video file that no metadata.json lists (those get no output from any step)."""
    entries = load_entries(args)
    summary = RunSummary(step)
    for path in unlisted_videos(args.root_dir, entries):
        summary.notes[UNLISTED] += 1
        summary.fail(str(path), f"{UNLISTED} {path.parent / 'metadata.json'}: skipped; add an entry to process it")
    return entries, summary


@contextmanager
def refused_settings() -> Iterator[None]:
    """A ManifestError (settings that do not fit what is on disk) ends the step before any work, with its message."""
    try:
        yield
    except ManifestError as err:
        raise SystemExit(f"error: {err}") from err


def shard_of(entries: dict[str, VideoEntry], args: argparse.Namespace) -> list[VideoEntry]:
    """The videos of the whole dataset this process handles, sorted by id.

    Shards split families (an original and its fakes) by the original's id, so every step of a shard finds the
    boxes and crops of its fakes' originals in its own shard; the split depends on the full dataset only, so
    every step agrees on it.
    """
    try:
        families = set(take_shard({e.original_id for e in entries.values()}, args.num_shards, args.shard_index))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    chosen = sorted((e for e in entries.values() if e.original_id in families), key=lambda e: e.video_id)
    if args.num_shards > 1:
        log.info("shard %d of %d: %d of %d videos", args.shard_index, args.num_shards, len(chosen), len(entries))
    return chosen


def missing_file_failures(entries: Sequence[VideoEntry], summary) -> list[VideoEntry]:
    """Entries whose video file exists; the others are reported (metadata lists a file that is not on disk)."""
    present = []
    for entry in entries:
        if entry.path.is_file():
            present.append(entry)
        else:
            summary.notes["listed in metadata but missing on disk"] += 1
            summary.fail(entry.name, f"listed in {entry.path.parent / 'metadata.json'} but {entry.path} does not exist")
    return present


def run_video_jobs(summary: RunSummary, worker: Callable[[tuple], RunSummary], jobs: Sequence[tuple], workers: int,
                   desc: str, size_of: Callable[[tuple], int], start_method: str = "spawn") -> RunSummary:
    """Run one job per video in the worker pool, largest first, add each job's summary to `summary`, print the
    report."""
    for result in run_parallel(worker, largest_first(jobs, size_of), workers, desc=desc, start_method=start_method):
        summary.merge(result)
    summary.report()
    return summary


def largest_first(jobs: Sequence[tuple], size_of: Callable[[tuple], int]) -> list[tuple]:
    """Jobs ordered by `size_of` (the bytes a job reads), biggest first, so that no big video starts last and
    runs alone while the other workers idle."""
    return sorted(jobs, key=size_of, reverse=True)


def folder_bytes(folder: Path) -> int:
    """Total size of the files in a folder: the work of a step that reads every crop in it."""
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


@contextmanager
def video_job(summary: RunSummary, name: str) -> Iterator[None]:
    """Any error while processing one video becomes a named, counted failure, so the other videos go on."""
    try:
        yield
    except VideoReadError as err:
        summary.fail(name, str(err))
    except Exception as err:  # one bad video must not stop the others
        summary.fail(name, f"{type(err).__name__}: {err}")


def record_finished(args: argparse.Namespace, step: str, settings: dict, video_ids, output_folder) -> None:
    """Write the step's manifest: its settings and the videos whose output folder is complete."""
    done = [video_id for video_id in video_ids if is_done(output_folder(args.root_dir, video_id))]
    write_manifest(args.root_dir, step, settings, done, args.num_shards, args.shard_index)


def checked_step_inputs(args: argparse.Namespace, step: str, settings_of: Callable[[], dict], outputs: str,
               how_to_keep: str) -> tuple[dict[str, VideoEntry], RunSummary, dict]:
    """(entries, summary, settings) of a step that builds on earlier steps: `settings_of` reads what they recorded
    (preprocessing.manifest.require); outputs made with other settings are refused before any work."""
    entries, summary = step_inputs(args, step)
    with refused_settings():
        settings = settings_of()
        check_rerun(args.root_dir, step, settings, outputs=outputs, how_to_keep=how_to_keep)
    return entries, summary, settings


def reals_with_crops(args: argparse.Namespace, entries: dict[str, VideoEntry], summary: RunSummary,
                     output_folder) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """(this shard's real videos, those still to do): finished ones count as skipped, and ones without finished
    crops are named as failures."""
    reals = [entry for entry in shard_of(entries, args) if not entry.is_fake]
    todo = []
    for entry in reals:
        if is_done(output_folder(args.root_dir, entry.video_id)):
            summary.skipped += 1
        elif not is_done(crops_folder(args.root_dir, entry.video_id)):
            summary.notes["real videos without finished crops"] += 1
            summary.fail(entry.name, "no finished crops folder (extract_crops failed or has not run)")
        else:
            todo.append(entry)
    return reals, todo
