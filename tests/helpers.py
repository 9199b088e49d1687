"""Helpers (no tests) shared by the test modules: running scripts as a user does, videos written with
PyAV/libx264, release-format checkpoints, preprocessing outputs compared, the demo trainer's arguments."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from skimage import data as skdata

from core.layout import load_boxes

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real FaceForensics++ videos in the DFDC layout for the integration test (skipped when absent).
FFPP_ROOT = Path(os.environ.get("FFPP_ROOT") or REPO_ROOT.parent / "shared" / "data" / "ffpp_c40")


def run_script(*args: str, env: dict | None = None, check: bool = True, timeout: float = 900):
    """Run a repository script or module the way a user does, from the repository root."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([str(a) for a in args], cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def stand_in_on_path(folder: Path, name: str, script: str) -> str:
    """Write an executable stand-in for a command (docker, kaggle) into folder/bin; returns a PATH that finds it
    first."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(script)
    program.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


WIDTH, HEIGHT = 480, 360
FPS = 10


def write_video(path: Path, frames: list[np.ndarray], fps: int = FPS, codec: str = "libx264") -> Path:
    """PyAV picks the container from the extension, in any case (.mp4, .MP4, .mov, .mkv, .avi, .ts, and .webm with
    codec="libvpx-vp9")."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "ultrafast"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def face_frames(count: int) -> list[np.ndarray]:
    """The astronaut (one real face) drifting across a grey background."""
    face = cv2.resize(skdata.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        x, y = 40 + (6 * i) % 140, 20 + (2 * i) % 40
        canvas[y:y + 300, x:x + 300] = face
        frames.append(canvas)
    return frames


def gradient_frames(count: int) -> list[np.ndarray]:
    """A moving colour gradient: decodes fine, has no face."""
    xs = np.linspace(0, 255, WIDTH)[None, :, None]
    ys = np.linspace(0, 255, HEIGHT)[:, None, None]
    return [np.broadcast_to(((xs + ys + 10 * i) % 256), (HEIGHT, WIDTH, 3)).astype(np.uint8).copy()
            for i in range(count)]


def corrupt_file(path: Path) -> Path:
    path.write_bytes(b"this is not an mp4 file" * 100)
    return path


class _Numpy1Pickler(pickle._Pickler):
    """Writes NumPy's scalar constructor under its NumPy 1.x name, as the 2020 checkpoints reference it."""

    def save_global(self, obj, name=None):
        if obj is np._core.multiarray.scalar:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


class numpy1_pickle_module:  # noqa: N801 - used as a module by torch.save(pickle_module=...)
    Pickler = _Numpy1Pickler
    Unpickler = pickle.Unpickler
    dump = staticmethod(pickle.dump)
    load = staticmethod(pickle.load)
    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL


def save_release_checkpoint(model: torch.nn.Module, path: Path, legacy_format: bool = True) -> Path:
    """A checkpoint in the winner's release format: DDP 'module.' keys, epoch, NumPy-1.x float64 bce_best."""
    checkpoint = {"epoch": 37, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                  "bce_best": np.float64(0.1953)}
    torch.save(checkpoint, path, pickle_module=numpy1_pickle_module, pickle_protocol=2,
               _use_new_zipfile_serialization=not legacy_format)
    return path


def write_truncated_video(path: Path, frames: list[np.ndarray], keep_fraction: float = 0.5) -> Path:
    """An mp4 whose header (moov at the front) lists every frame but whose data stops part-way: the header
    frame count is too high, as in damaged downloads."""
    full = path.with_suffix(".full.mp4")
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "20", "preset": "ultrafast", "g": "5"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[:int(len(data) * keep_fraction)])
    return path


# Preprocessing outputs
OUTPUT_DIRS = ("boxes", "crops", "landmarks", "diffs")


def output_files(root: Path) -> dict[str, int]:
    """Relative path -> mtime of every output file (and folds.csv)."""
    found = {}
    for name in (*OUTPUT_DIRS, "folds.csv"):
        path = root / name
        paths = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        found.update({str(p.relative_to(root)): p.stat().st_mtime_ns for p in paths})
    return found


def assert_same_outputs(root: Path, reference: Path) -> None:
    """The same output files, boxes and folds.csv as the reference run."""
    assert set(output_files(root)) == set(output_files(reference))
    for boxes_file in (root / "boxes").iterdir():
        sharded, single = (load_boxes(r / "boxes" / boxes_file.name) for r in (root, reference))
        assert sharded.keys() == single.keys()
        for frame in sharded:
            np.testing.assert_allclose(sharded[frame], single[frame], atol=1e-2)
    assert (root / "folds.csv").read_text() == (reference / "folds.csv").read_text()


# The trainer on the demo config, shortened
TRAINER = "training/pipelines/train_classifier.py"
DEMO_CONFIG = REPO_ROOT / "configs" / "demo_cpu.json"
NAME = "t_DeepFakeClassifier_efficientnet_lite0_0"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def torchrun(*args) -> str:
    """Run a script under torchrun with 2 CPU processes, one thread each; its stdout and stderr."""
    launcher = str(Path(sys.executable).parent / "torchrun")
    result = run_script(launcher, "--standalone", "--nproc_per_node", "2", *args, env=ONE_THREAD, timeout=600)
    return result.stdout + result.stderr


def trainer_args(data_dir: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [TRAINER, "--config", DEMO_CONFIG, "--data-dir", data_dir, "--output-dir", out / "weights",
            "--logdir", out / "logs", "--prefix", "t_", "--workers", "0", "--epochs", str(epochs),
            "--batches-per-epoch", "2", "--override", "optimizer.batch_size=2", *extra]
