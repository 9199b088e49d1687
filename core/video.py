"""Video decoding with PyAV, keyed by the true frame index.

Frames come out in presentation order; the index of each is derived from its timestamp when the stream has
one, so a frame that fails to decode does not shift the indices of the frames after it (the original's
detect step numbered frames by position and shifted every key after a failed decode).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from collections.abc import Callable, Iterator

import av
import numpy as np
from PIL import Image


class VideoReadError(RuntimeError):
    """A video that cannot be opened or yields no frame; the message names the file."""


def open_video(path: Path):
    """A PyAV container; VideoReadError naming the file when it is missing, empty or not a video."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: cannot open ({err})") from err
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: no video stream")
    return container


def header_geometry(path: Path) -> tuple[int, int, int]:
    """(width, height, frame count) from the container header, without decoding. The count is 0 when unknown
    and can be wrong; readers must cope."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height, int(stream.frames or 0)


def header_frame_count(path: Path) -> int:
    return header_geometry(path)[2]


class _FrameIndexer:
    """Turns a decoded frame's timestamp into its frame number (falls back to counting)."""

    def __init__(self, stream):
        rate = stream.average_rate or stream.guessed_rate
        self.step = (Fraction(1) / (Fraction(rate) * stream.time_base)) if rate and stream.time_base else None
        self.start = stream.start_time if stream.start_time is not None else 0
        self.counter = 0

    def index_at(self, pts: int | None) -> int | None:
        """The frame number of a timestamp, None when the stream has no usable timing."""
        if self.step is None or pts is None:
            return None
        return int(round((pts - self.start) / self.step))

    def __call__(self, frame) -> int:
        index = self.index_at(frame.pts)
        if index is None:
            index = self.counter
        self.counter = index + 1
        return index


# Codecs whose decoders honour skip_frame = NONREF by dropping only frames that no other frame references.
SKIP_UNREFERENCED_CODECS = frozenset({"h264", "hevc"})


def _skip_unkept_frames(stream, keep: Callable[[int], bool] | None, index_of: _FrameIndexer):
    """A per-packet hook telling the decoder to skip the packet's frame when it is not kept and no other frame
    references it (H.264/HEVC non-reference pictures, about half of the frames of a typical x264 encode), or
    None when nothing can be skipped. Kept frames decode from the same reference frames, so they are the same
    pixels as with every frame decoded (tests/test_video.py compares them)."""
    if keep is None or stream.codec_context.name not in SKIP_UNREFERENCED_CODECS or index_of.step is None:
        return None
    context = stream.codec_context

    def before_decoding(packet) -> None:
        index = index_of.index_at(packet.pts)
        context.skip_frame = "DEFAULT" if index is None or keep(index) else "NONREF"

    return before_decoding


def iter_frames(path: Path, keep: Callable[[int], bool] | None = None, half: bool = False,
                threads: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame_index, RGB uint8 HxWx3) for every frame whose index passes `keep`.

    `keep` must be a plain predicate: it is also asked about frames before they are decoded, to skip them, and
    about frames that then fail to decode.

    Frames not kept are never converted, and those no other frame references (H.264/HEVC) are not even
    decoded; the others are decoded because later frames need them.
    `half=True` gives the detector's half-size frame instead (`half_size`: the same pixels in preprocessing and
    prediction).
    Raises VideoReadError if the file cannot be opened or not a single frame decodes; a corrupt packet in
    the middle is skipped and the remaining frames keep their true indices.
    """
    def to_rgb(frame) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24")
        return half_size(image) if half else image

    return _decoded_frames(path, keep, threads, to_rgb)


def decodable_frame_count(path: Path, threads: bool = True) -> int:
    """1 + the highest frame index that decodes (every frame is decoded, none converted). Raises VideoReadError
    if the file cannot be opened or not a single frame decodes."""
    return 1 + max(index for index, _ in _decoded_frames(path, None, threads, lambda frame: None))


def _decoded_frames(path: Path, keep: Callable[[int], bool] | None, threads: bool,
                    convert: Callable) -> Iterator[tuple[int, object]]:
    """(index, convert(frame)) for every frame that decodes and passes `keep` (None: every frame), in
    presentation order; see iter_frames."""
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"
        index_of = _FrameIndexer(stream)
        skip_unkept = _skip_unkept_frames(stream, keep, index_of)
        decoded_any = False
        for packet in container.demux(stream):
            if skip_unkept is not None:
                skip_unkept(packet)
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a damaged packet: drop it, later frames keep their timestamps
            for frame in frames:
                decoded_any = True
                index = index_of(frame)
                if keep is None or keep(index):
                    yield index, convert(frame)
        if not decoded_any:
            raise VideoReadError(f"{path}: no frame could be decoded")
    except av.error.FFmpegError as err:
        raise VideoReadError(f"{path}: decoding failed ({err})") from err
    finally:
        container.close()


def half_size(frame: np.ndarray) -> np.ndarray:
    """The face detector's input: (w // 2, h // 2) with PIL bicubic, as the original.

    Preprocessing and prediction both detect on this frame, so their boxes agree with each other and with the
    original's (swscale's bicubic differs by ~0.3 grey levels, enough to move MTCNN boxes by a few pixels).
    """
    height, width = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((width // 2, height // 2), Image.BICUBIC))
