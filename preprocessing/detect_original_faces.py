"""Step 1: MTCNN face boxes for every REAL video, on half-size frames.

Only every --frame-stride-th frame is converted. On CUDA, worker processes decode videos without loading torch and
the main process runs the detector on batches of equally sized frames taken across videos. On the CPU each
worker decodes a video and detects its faces itself, on one thread, in batches of --batch-size frames of that
video (as the original batched). The boxes are then linked into face tracks (core/tracks.py, settings recorded in
the manifest). boxes/<id>.json per video:
{"<true frame index>": [[x1, y1, x2, y2, track], ...] in half-resolution pixels, largest face first | null},
where track numbers the video's people by first appearance, then size (docs/people.md).
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import logging
import math
import multiprocessing as mp
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_write_json
from core.faces import DETECT_THRESHOLDS, DETECTOR_DOWNSCALE, detect_batch, make_mtcnn
from core.layout import VideoEntry, boxes_path
from core.processes import end_helper_processes, limit_library_threads, run_parallel
from core.tracks import CROWDED, TrackStats, link_tracks, scene_cuts, tracker_for_stride
from core.video import VideoReadError, header_frame_count, iter_frames
from preprocessing.common import RunSummary
from preprocessing.manifest import ManifestError, check_rerun, write_manifest
from preprocessing.step import (largest_first, make_parser, missing_file_failures, refused_settings, shard_of,
                                start_step)

log = logging.getLogger("preprocessing")
STEP = "detect_original_faces"
DEFAULT_CROP_EVERY = 10  # the original crops every 10th frame


@dataclass
class DecodedVideo:
    """What a decoding worker sends back: the kept half-size frames of one video, or why there are none."""

    video_id: str
    name: str  # the file name, for reports
    indices: list[int] = field(default_factory=list)
    frames: np.ndarray | None = None  # (N, H, W, 3) RGB uint8
    cuts: list[bool] = field(default_factory=list)  # per kept frame: a new shot starts there (core.tracks)
    undecodable_kept_frames: int = 0
    error: str | None = None


def decode_for_detection(job: tuple[VideoEntry, int, bool]) -> DecodedVideo:
    """Decode one video, keeping frames whose index is a multiple of the stride, at half size."""
    entry, stride, threads = job
    try:
        decoded = list(iter_frames(entry.path, keep=lambda i: i % stride == 0, half=True, threads=threads))
        if not decoded:
            raise VideoReadError(f"{entry.path}: frames decode, but none at a multiple of --frame-stride {stride}")
        expected = -(-header_frame_count(entry.path) // stride)  # kept frames the header promises (0 if unknown)
        indices = [index for index, _ in decoded]
        frames = np.stack([frame for _, frame in decoded])
        cuts = scene_cuts(frames, tracker_for_stride(stride))
        return DecodedVideo(entry.video_id, entry.name, indices, frames, cuts, max(expected - len(indices), 0))
    except VideoReadError as err:
        return DecodedVideo(entry.video_id, entry.name, error=str(err))
    except Exception as err:  # an unexpected decoder failure must not stop the other videos
        return DecodedVideo(entry.video_id, entry.name, error=f"{entry.path}: {type(err).__name__}: {err}")


def decoded_videos(entries: list[VideoEntry], stride: int, workers: int,
                   crop_every: int = DEFAULT_CROP_EVERY) -> Iterator[DecodedVideo]:
    """Decoded videos in completion order.

    Decoding runs ahead of detection by a bounded number of videos, which bounds memory when the detector is
    the slower side: 2 per worker at the default stride (~45 MB per 1080p DFDC video), proportionally fewer at
    smaller strides, where one video holds up to 10x more frames.
    """
    if workers <= 1:
        for entry in entries:
            yield decode_for_detection((entry, stride, True))
        return
    pending_entries = iter(entries)
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=limit_library_threads) as pool:
        in_flight = set()
        max_in_flight = max(2, min(2 * workers, 2 * workers * stride // crop_every))
        while True:
            while len(in_flight) < max_in_flight:
                entry = next(pending_entries, None)
                if entry is None:
                    break
                in_flight.add(pool.submit(decode_for_detection, (entry, stride, False)))
            if not in_flight:
                return
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()


class FrameBatcher:
    """Collects frames of several videos into detector batches of one frame size (MTCNN needs equal sizes)
    and hands back each video once all its frames have boxes."""

    def __init__(self, detect, batch_size: int):
        self.detect = detect
        self.batch_size = batch_size
        self.queues: dict[tuple, list[tuple[DecodedVideo, int]]] = defaultdict(list)
        self.boxes: dict[str, list] = {}
        self.remaining: dict[str, int] = {}

    def add(self, video: DecodedVideo) -> list[DecodedVideo]:
        self.boxes[video.video_id] = [None] * len(video.indices)
        self.remaining[video.video_id] = len(video.indices)
        queue = self.queues[video.frames.shape[1:]]
        queue.extend((video, position) for position in range(len(video.indices)))
        finished = []
        while len(queue) >= self.batch_size:
            finished += self._run(queue, self.batch_size)
        return finished

    def flush(self) -> list[DecodedVideo]:
        finished = []
        for queue in self.queues.values():
            while queue:
                finished += self._run(queue, self.batch_size)
        return finished

    def result(self, video: DecodedVideo) -> list:
        self.remaining.pop(video.video_id)
        return self.boxes.pop(video.video_id)

    def _run(self, queue: list, size: int) -> list[DecodedVideo]:
        batch, queue[:] = queue[:size], queue[size:]
        detections = self.detect([video.frames[position] for video, position in batch])
        finished = []
        for (video, position), boxes in zip(batch, detections):
            self.boxes[video.video_id][position] = boxes
            self.remaining[video.video_id] -= 1
            if self.remaining[video.video_id] == 0:
                finished.append(video)
        return finished


@lru_cache(maxsize=None)
def _cpu_detector():
    return make_mtcnn(DETECT_THRESHOLDS, "cpu")


def detect_in_worker(job: tuple[VideoEntry, int, int, bool]) -> tuple[DecodedVideo, list | None]:
    """Decode one video and detect its faces on the CPU, `batch_size` of its frames per detector call; the
    frames stay in the worker (only the boxes travel back)."""
    entry, stride, batch_size, decoder_threads = job
    video = decode_for_detection((entry, stride, decoder_threads))
    if video.error:
        return video, None
    detector = _cpu_detector()
    boxes = []
    for start in range(0, len(video.frames), batch_size):
        boxes += detect_batch(detector, list(video.frames[start:start + batch_size]))
    video.frames = None
    return video, boxes


def detected_on_cpu(entries: list[VideoEntry], stride: int, workers: int,
                    batch_size: int) -> Iterator[tuple[DecodedVideo, list | None]]:
    """(video, boxes per kept frame) in completion order, largest videos first: one video per worker job."""
    import core.mtcnn  # noqa: F401  (facenet-pytorch: imported once here, not in every forked worker)

    jobs = largest_first([(entry, stride, batch_size, workers <= 1) for entry in entries],
                         size_of=lambda job: job[0].path.stat().st_size)
    yield from run_parallel(detect_in_worker, jobs, workers, desc="detect faces (videos)", start_method="fork")


def boxes_json(indices: list[int], boxes: list, tracks: list) -> dict[str, list | None]:
    """{frame: [[x1, y1, x2, y2, track], ...] or None}."""
    return {str(index): (None if frame_boxes is None else
                         [[*box, track] for box, track in zip(frame_boxes.tolist(), frame_tracks)])
            for index, frame_boxes, frame_tracks in zip(indices, boxes, tracks)}


def count_tracks(summary: RunSummary, stats: TrackStats) -> None:
    """The tracker's counts in the step's summary (bad input is counted, never fatal)."""
    counts = {"face tracks": stats.tracks,
              "frames without the face inside a track (bridged)": stats.bridged_misses,
              "tracks ended by a gap or a scene cut (the face may come back as a new track)": stats.lost,
              "scene cuts": stats.cuts, f"videos with more than {CROWDED} tracks": stats.crowded}
    summary.notes.update({name: count for name, count in counts.items() if count})


def parse_args(argv):
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--frame-stride", type=int, default=10,
                        help="detect on every N-th frame (10: only the frames extract_crops uses; 1 = every frame, "
                             "as the original). Must divide --crop-every")
    parser.add_argument("--crop-every", type=int, default=DEFAULT_CROP_EVERY,
                        help="extract_crops crops every N-th frame (the original: 10); recorded for the later steps")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per detector call")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    args = parser.parse_args(argv)
    if args.frame_stride < 1 or args.batch_size < 1 or args.crop_every < 1:
        parser.error("--frame-stride, --crop-every and --batch-size must be at least 1")
    return args


def detection_settings(frame_stride: int, crop_every: int) -> dict:
    """What the boxes depend on, as recorded in the manifest; ManifestError for a stride that misses crop frames."""
    if crop_every % frame_stride:
        multiple = math.lcm(frame_stride, crop_every)
        raise ManifestError(
            f"--frame-stride {frame_stride} does not divide --crop-every {crop_every}: only multiples of frame "
            f"{multiple} would have both boxes and a crop, so extract_crops would silently make "
            f"1/{multiple // crop_every} of the crops. Use a stride that divides {crop_every} "
            f"({', '.join(str(d) for d in range(1, crop_every + 1) if crop_every % d == 0)}), or crop the detected "
            f"frames with --crop-every {frame_stride} (or a multiple of it).")
    return {"frame_stride": frame_stride, "crop_every": crop_every, "detector_thresholds": list(DETECT_THRESHOLDS),
            "detector_downscale": DETECTOR_DOWNSCALE, "half_size": "PIL bicubic",
            "tracker": tracker_for_stride(frame_stride).to_dict()}


def main(argv: Iterable[str] | None = None) -> RunSummary:
    args = parse_args(argv)
    entries, summary = start_step(args, STEP)
    with refused_settings():
        settings = detection_settings(args.frame_stride, args.crop_every)
        check_rerun(args.root_dir, STEP, settings, outputs=f"boxes in {args.root_dir / 'boxes'}",
                    how_to_keep="Rerun with the recorded values")
    videos = missing_file_failures([e for e in shard_of(entries, args) if not e.is_fake], summary)
    todo = [e for e in videos if not boxes_path(args.root_dir, e.video_id).is_file()]
    summary.skipped = len(videos) - len(todo)
    finished = [e.video_id for e in videos if e not in todo]
    if not todo:
        write_manifest(args.root_dir, STEP, settings, finished, args.num_shards, args.shard_index)
        summary.report()
        return summary

    from core.runtime import pick_device  # here, not at the top: it loads torch, which CUDA's decoding
    # workers, importing this module, do not need

    device = pick_device(args.device)

    def usable(video: DecodedVideo) -> bool:
        """Count a failed video (False) or warn about kept frames that did not decode."""
        if video.error:
            summary.fail(video.name, video.error)
            return False
        if video.undecodable_kept_frames:
            summary.notes["kept frames that failed to decode"] += video.undecodable_kept_frames
            log.warning("%s: %d kept frames failed to decode; their keys are absent",
                        video.name, video.undecodable_kept_frames)
        return True

    def write(video: DecodedVideo, boxes: list) -> None:
        summary.frames_without_face += sum(frame_boxes is None for frame_boxes in boxes)
        tracks, stats = link_tracks(boxes, tracker_for_stride(args.frame_stride), video.cuts)
        count_tracks(summary, stats)
        atomic_write_json(boxes_path(args.root_dir, video.video_id), boxes_json(video.indices, boxes, tracks))
        finished.append(video.video_id)
        summary.done += 1

    if device.type == "cpu":
        for video, boxes in detected_on_cpu(todo, args.frame_stride, args.workers, args.batch_size):
            if usable(video):
                write(video, boxes)
    else:
        mtcnn = make_mtcnn(DETECT_THRESHOLDS, device)
        batcher = FrameBatcher(lambda frames: detect_batch(mtcnn, frames), args.batch_size)
        with tqdm(total=len(todo), desc="detect faces (videos)") as progress:
            for video in decoded_videos(todo, args.frame_stride, args.workers, args.crop_every):
                if not usable(video):
                    progress.update()
                    continue
                for complete in batcher.add(video):
                    write(complete, batcher.result(complete))
                    progress.update()
            for complete in batcher.flush():
                write(complete, batcher.result(complete))
                progress.update()
    write_manifest(args.root_dir, STEP, settings, finished, args.num_shards, args.shard_index)
    summary.report()
    return summary


if __name__ == "__main__":
    main()
    end_helper_processes()
