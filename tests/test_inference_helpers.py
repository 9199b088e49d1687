"""Helpers (no tests) for the inference tests: videos written with PyAV/libx264, release-format checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from skimage import data as skdata

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
