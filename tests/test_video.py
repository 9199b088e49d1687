"""Sparse decoding: frames that are not kept and that no other frame references are skipped by the decoder,
and the kept frames are exactly the frames a full decode gives."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import pytest

from helpers import FFPP_ROOT, face_frames
from core.video import _FrameIndexer, _skip_unkept_frames, iter_frames

FFPP_VIDEO = FFPP_ROOT / "dfdc_train_part_0" / "183.mp4"
FIRST = 60  # frames compared (a 720p video's 390 decoded frames would hold 1 GB)


def write_video_with_b_frames(path: Path, count: int, codec: str = "libx264") -> Path:
    """x264 (or x265) as real datasets were encoded: B-frames (some of them non-reference) between references."""
    frames = face_frames(count)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "23", "preset": "fast", "bf": "3", "g": "50"}
        else:
            stream.options = {"crf": "28", "preset": "fast", "x265-params": "bframes=3:keyint=50:log-level=error"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@lru_cache(maxsize=2)
def full_decode(path: Path, threads: bool, half: bool = False) -> dict[int, np.ndarray]:
    """The first frames, from a decode that skips nothing (`keep=None`), then filtered."""
    return {index: image for index, image in iter_frames(path, half=half, threads=threads) if index < FIRST}


def frames_decoded(path: Path, skip: str) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = skip
        return sum(1 for _ in container.decode(stream))


@pytest.fixture(scope="module")
def generated_video(tmp_path_factory) -> Path:
    return write_video_with_b_frames(tmp_path_factory.mktemp("video") / "b_frames.mp4", 60)


@pytest.fixture(scope="module")
def generated_hevc_video(tmp_path_factory) -> Path:
    return write_video_with_b_frames(tmp_path_factory.mktemp("video") / "b_frames_hevc.mp4", 60, "libx265")


@pytest.fixture(params=["generated", "hevc", "ffpp"])
def video(request, generated_video, generated_hevc_video) -> Path:
    """The generated H.264 and HEVC videos, and a real FaceForensics++ c40 one where the sample is present."""
    if request.param == "ffpp":
        if not FFPP_VIDEO.is_file():
            pytest.skip(f"{FFPP_VIDEO} not present")
        return FFPP_VIDEO
    return generated_hevc_video if request.param == "hevc" else generated_video


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("keep_every", [10, 3])
def test_kept_frames_are_those_of_a_full_decode(video, threads, keep_every):
    everything = full_decode(video, threads)
    assert frames_decoded(video, "NONREF") < frames_decoded(video, "DEFAULT"), \
        "the video has no unreferenced frame: nothing would be skipped"

    kept = list(iter_frames(video, keep=lambda i: i < FIRST and i % keep_every == 0, threads=threads))

    assert [index for index, _ in kept] == [i for i in sorted(everything) if i % keep_every == 0]
    for index, image in kept:
        assert np.array_equal(image, everything[index]), f"frame {index} differs from the full decode"


def test_an_arbitrary_set_of_frames_and_half_size(generated_video):
    wanted = {0, 1, 2, 7, 13, 14, 29, 41, 58}
    everything = full_decode(generated_video, False, half=True)
    kept = dict(iter_frames(generated_video, keep=wanted.__contains__, half=True, threads=False))
    assert sorted(kept) == sorted(wanted & set(everything))
    assert all(np.array_equal(kept[i], everything[i]) for i in kept)


def test_frames_not_kept_and_not_referenced_are_not_decoded(video):
    keep = lambda i: i % 10 == 0  # noqa: E731
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        index_of = _FrameIndexer(stream)
        before_decoding = _skip_unkept_frames(stream, keep, index_of)
        decoded = []
        for packet in container.demux(stream):
            before_decoding(packet)
            decoded += [index_of(frame) for frame in packet.decode()]
    assert len(decoded) < frames_decoded(video, "DEFAULT")
    assert {i for i in decoded if keep(i)} == {i for i in range(frames_decoded(video, "DEFAULT")) if keep(i)}
