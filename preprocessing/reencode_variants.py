"""Re-encoded copies of the training videos (NTech-Lab's re-encoding augmentation, made once instead of per sample).

    python -m preprocessing.reencode_variants --root-dir DATA_ROOT --variants 2 --seed 777
    bash preprocess_data.sh DATA_ROOT     # then: boxes, crops, landmarks, diffs and folds of the copies

For every video of every part outside the holdout fold, and each K in 1..--variants, a copy
DATA_ROOT/dfdc_train_part_N_reencode_K/<id>_rvK.mp4 with a random H.264 CRF in 17-40, a random scale in 0.25-1.0
(down and back up, so the copy keeps the frame size and the detector sees the same geometry) and a random frame
rate in 15-30 fps (never above the source's), drawn once per family: an original and its fakes get the same
draw, so the fakes' crops, cut with their original's boxes, stay aligned. The folder's metadata.json points each
copied fake to the copy of its original and records the draw ("reencode": source, crf, scale, rate); the copies
belong to part N, hence to the same fold as their source. The holdout fold's parts (--n-splits, --holdout-fold:
generate_folds's split) get no copies, and the trainer never validates on a copy.

Training uses the copies' crops only with "reencode_variants": true in the config. Finished copies are skipped,
each copy appears only when complete, and DATA_ROOT/manifests/reencode_variants.json records the settings and the
copies made; a rerun with other settings is refused.
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from core.atomic import atomic_write_json
from core.layout import METADATA_FILE, VideoEntry, is_variant, variant_dir, variant_name
from core.perturb import parse_spec, write_perturbed
from core.processes import run_parallel
from preprocessing.common import RunSummary
from preprocessing.generate_folds import DFDC_PARTS, fold_of_part
from preprocessing.manifest import check_rerun, recorded_videos, write_manifest
from preprocessing.step import (
    make_parser,
    missing_file_failures,
    refused_settings,
    step_inputs,
    video_job,
)

log = logging.getLogger("preprocessing")
STEP = "reencode_variants"
CRF_RANGE = (17, 40)  # NTech-Lab's ranges
SCALE_RANGE = (0.25, 1.0)
RATE_RANGE = (15.0, 30.0)


def family_draw(seed: int, original_id: str, variant: int) -> dict:
    """The re-encoding of one family's K-th copy: the same for the original and all its fakes, on any rerun."""
    rng = random.Random(f"{seed}|{original_id}|{variant}")
    return {"crf": rng.randint(*CRF_RANGE), "scale": round(rng.uniform(*SCALE_RANGE), 3),
            "rate": round(rng.uniform(*RATE_RANGE), 2)}


def spec_of(draw: dict) -> str:
    return f"scale:{draw['scale']}+rate:{draw['rate']}+crf:{draw['crf']}"


def planned_copies(entries: dict[str, VideoEntry], variants: int, seed: int, n_splits: int,
                   holdout_fold: int) -> list[tuple[VideoEntry, int, dict]]:
    """(source entry, K, draw) of every copy to have: all videos outside the holdout fold, K = 1..variants."""
    return [(entry, k, family_draw(seed, entry.original_id, k))
            for entry in sorted(entries.values(), key=lambda e: e.video_id)
            if fold_of_part(entry.part, n_splits) != holdout_fold for k in range(1, variants + 1)]


def target_of(root: Path, entry: VideoEntry, variant: int) -> Path:
    return variant_dir(root, entry.part, variant) / variant_name(entry.name, variant)


def make_copy(job: tuple) -> RunSummary:
    root, entry, variant, draw = job
    summary = RunSummary(STEP)
    target = target_of(root, entry, variant)
    if target.is_file():
        summary.skipped += 1
        return summary
    with video_job(summary, entry.name):
        write_perturbed(entry.path, target, parse_spec(spec_of(draw)))
        summary.done += 1
    return summary


def metadata_entry(entry: VideoEntry, variant: int, draw: dict) -> dict:
    return {"label": entry.label, "original": variant_name(entry.original, variant) if entry.is_fake else None,
            "reencode": {"source": entry.name, **draw}}


def write_metadata(root: Path, plan: list[tuple[VideoEntry, int, dict]]) -> list[str]:
    """Each copies folder's metadata.json, listing the copies that exist; returns their ids."""
    folders: dict[Path, dict] = defaultdict(dict)
    made = []
    for entry, variant, draw in plan:
        target = target_of(root, entry, variant)
        if target.is_file():
            folders[target.parent][target.name] = metadata_entry(entry, variant, draw)
            made.append(target.stem)
    for folder, metadata in folders.items():
        atomic_write_json(folder / METADATA_FILE, metadata, indent=1)
    return made


def main(argv: Iterable[str] | None = None) -> RunSummary:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1, help="re-encoded copies per training video")
    parser.add_argument("--seed", type=int, default=777, help="seed of the CRF, scale and frame-rate draws")
    parser.add_argument("--n-splits", type=int, default=16, help="generate_folds's number of folds")
    parser.add_argument("--holdout-fold", type=int, default=0, help="the fold that gets no copies (validation)")
    args = parser.parse_args(argv)
    if args.variants < 1:
        parser.error("--variants must be at least 1")
    if not 1 <= args.n_splits <= DFDC_PARTS or not 0 <= args.holdout_fold < args.n_splits:
        parser.error(f"--n-splits must be 1-{DFDC_PARTS} and --holdout-fold below it")
    settings = {"variants": args.variants, "seed": args.seed, "n_splits": args.n_splits,
                "holdout_fold": args.holdout_fold, "crf": list(CRF_RANGE), "scale": list(SCALE_RANGE),
                "rate": list(RATE_RANGE), "scale_mode": "down and back up"}
    entries, summary = step_inputs(args, STEP)
    with refused_settings():
        check_rerun(args.root_dir, STEP, settings, outputs="re-encoded copies",
                    how_to_keep="Run with the recorded --variants/--seed/--n-splits/--holdout-fold")
    sources = {e.video_id: e for e in entries.values() if not is_variant(e.video_id)}  # copies are not copied
    present = {e.video_id for e in missing_file_failures(list(sources.values()), summary)}
    plan = planned_copies({k: v for k, v in sources.items() if k in present}, args.variants, args.seed,
                          args.n_splits, args.holdout_fold)
    jobs = [(args.root_dir, entry, k, draw) for entry, k, draw in plan]
    log.info("%s: %d copies of %d videos outside fold %d", STEP, len(jobs), len(present), args.holdout_fold)
    for result in run_parallel(make_copy, jobs, args.workers, desc="re-encoding"):
        summary.merge(result)
    made = write_metadata(args.root_dir, plan)
    write_manifest(args.root_dir, STEP, settings, set(made) | recorded_videos(args.root_dir, STEP), merge=False)
    summary.report()
    return summary


if __name__ == "__main__":
    main()
