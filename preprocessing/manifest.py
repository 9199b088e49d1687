"""What each preprocessing step made, and with which settings: DATA_ROOT/manifests/<step>.json.

A step writes its manifest when it ends: {"step", "settings", "videos"} (the ids it has finished, including
those an earlier run finished). A sharded run writes one file per shard (<step>.shard<I>of<N>.json); they must
agree on the settings. Before doing any work a step
  - refuses to run with settings that differ from those its earlier outputs were made with (naming both), and
  - reads the manifest of the step it builds on, so that it follows what was really made (the frames that
    have boxes, the crop settings) instead of assuming the defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Iterable

from core.atomic import atomic_write_json
from core.damage import read_json
from core.layout import MANIFESTS_DIR
from core.settings import differences


class ManifestError(ValueError):
    """Settings that do not fit what is on disk; the message says what to run instead."""


def manifest_path(root: Path, step: str, num_shards: int = 1, shard_index: int = 0) -> Path:
    name = f"{step}.json" if num_shards == 1 else f"{step}.shard{shard_index}of{num_shards}.json"
    return Path(root) / MANIFESTS_DIR / name


def read_manifest(path: Path, step: str) -> dict:
    """One manifest file as {"step", "settings", "videos"}; ManifestError naming it when it is damaged."""
    remedy = f"delete it and rerun {step} (finished videos are skipped)"
    manifest = read_json(path, ManifestError, "a step manifest", remedy)
    videos = manifest.get("videos", []) if isinstance(manifest, dict) else None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("settings"), dict) and isinstance(videos, list)
            and all(isinstance(video, str) for video in videos)):
        raise ManifestError(f'{path}: not a step manifest (a JSON object with "settings" and a list of "videos"); '
                            f"{remedy}")
    return manifest


def _manifests(root: Path, step: str) -> list[tuple[Path, dict]]:
    folder = Path(root) / MANIFESTS_DIR
    paths = sorted(folder.glob(f"{step}.json")) + sorted(folder.glob(f"{step}.shard*.json"))
    return [(path, read_manifest(path, step)) for path in paths]


def recorded_settings(root: Path, step: str) -> dict[str, Any] | None:
    """The settings the step's outputs under root were made with, or None when it has not run."""
    manifests = _manifests(root, step)
    if not manifests:
        return None
    first_path, first = manifests[0]
    for path, manifest in manifests[1:]:
        if manifest["settings"] != first["settings"]:
            raise ManifestError(f"{path} and {first_path} record different settings for {step}: "
                                f"{manifest['settings']} vs {first['settings']}; the shards were run differently")
    return first["settings"]


def recorded_videos(root: Path, step: str) -> set[str]:
    return {video for _path, manifest in _manifests(root, step) for video in manifest.get("videos", [])}


def check_rerun(root: Path, step: str, settings: dict, outputs: str, how_to_keep: str) -> None:
    """Refuse to add outputs made with `settings` to outputs made with other settings."""
    recorded = recorded_settings(root, step)
    if recorded is None or recorded == settings:
        return
    raise ManifestError(
        f"{step}: the {outputs} under {root} were made with other settings "
        f"({'; '.join(differences(recorded, settings))}). "
        f"Mixing them would give a dataset that looks complete and is not. {how_to_keep}, or delete the {outputs}, "
        f"{manifest_path(root, step).parent}/{step}*.json and every later step's outputs to start over.")


def require(root: Path, step: str, needed_by: str) -> dict:
    """The settings of an earlier step that `needed_by` builds on; ManifestError when it has not run."""
    settings = recorded_settings(root, step)
    if settings is None:
        raise ManifestError(f"{needed_by}: {Path(root) / MANIFESTS_DIR}/{step}.json is missing, so {step} has not "
                            f"run on {root} (or ran before manifests existed: rerun it, finished videos are "
                            f"skipped). Run preprocess_data.sh, or the steps in order.")
    return settings


def write_manifest(root: Path, step: str, settings: dict, videos: Iterable[str], num_shards: int = 1,
                   shard_index: int = 0, merge: bool = True) -> Path:
    """Record the settings and the finished videos (with `merge`, added to those this shard recorded before)."""
    path = manifest_path(root, step, num_shards, shard_index)
    done = set(videos)
    if merge and path.is_file():
        done |= set(read_manifest(path, step).get("videos", []))
    atomic_write_json(path, {"step": step, "settings": settings, "videos": sorted(done)}, indent=1)
    return path
