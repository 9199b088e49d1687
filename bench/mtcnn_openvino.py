"""Would OpenVINO pay for the face detector? MTCNN's PNet over the image pyramid, PyTorch against OpenVINO.

    python bench/mtcnn_openvino.py ../shared/data/ffpp_c40 [--videos 3] [--threads 1]

On half-size frames of the first --videos real videos (every 30th frame, up to 8 per video), one thread by default
(as the prediction workers detect): times core.mtcnn's whole cascade per frame, then PNet alone over the same
pyramid levels in PyTorch and in OpenVINO (converted once with a dynamic height and width; each new level size is
a new shape for it). PNet is where the cascade spends its network time; RNet and ONet see a few dozen 24/48 px
patches per frame. Prints ms per frame and the largest PNet output difference.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core import faces
from core import mtcnn as cascade
from core.cli import HelpFormatter
from core.layout import load_dataset
from core.video import half_size, iter_frames


def real_frames(root: Path, videos: int) -> list[np.ndarray]:
    frames = []
    for item in [v for v in load_dataset(root).values() if not v.is_fake][:videos]:
        for _index, frame in iter_frames(item.path, keep=lambda i: i % 30 == 0 and i < 240):
            frames.append(half_size(frame))
    return frames


def pyramid(detector, frame: np.ndarray) -> list[torch.Tensor]:
    image = cascade.IntegralImage(frame[None])
    h, w = frame.shape[:2]
    return [cascade._normalise(image.resize((int(h * s + 1), int(w * s + 1))))
            for s in cascade._pyramid_scales(h, w, detector.min_face_size, detector.factor)]


def per_frame_ms(run, items) -> float:
    started = time.perf_counter()
    for item in items:
        run(item)
    return 1000 * (time.perf_counter() - started) / len(items)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import openvino as ov

    torch.set_num_threads(args.threads)
    frames = real_frames(args.data_root, args.videos)
    detector = faces.make_mtcnn(faces.INFERENCE_THRESHOLDS, "cpu")
    levels = [pyramid(detector, frame) for frame in frames]
    from facenet_pytorch.models.mtcnn import PNet

    with torch.no_grad():  # facenet-pytorch's own PNet (nn.MaxPool2d): core.mtcnn's strided pools fix the shapes
        converted = ov.convert_model(PNet().eval(), example_input=levels[0][0],
                                     input=[ov.PartialShape([1, 3, -1, -1])])
    pnet = ov.Core().compile_model(converted, "CPU", {"INFERENCE_NUM_THREADS": args.threads,
                                                      "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()

    def openvino_pnet(frame_levels):
        return [[pnet.infer({0: level.numpy()})[i].copy() for i in range(2)] for level in frame_levels]

    def torch_pnet(frame_levels):
        with torch.no_grad():
            return [[t.numpy() for t in detector.pnet(level)] for level in frame_levels]

    with torch.no_grad():
        whole = per_frame_ms(lambda f: cascade.detect_faces(detector, f[None]), frames)
    for run in (torch_pnet, openvino_pnet):
        run(levels[0])  # first call: allocations, OpenVINO's first shapes
    torch_ms, openvino_ms = per_frame_ms(torch_pnet, levels), per_frame_ms(openvino_pnet, levels)
    difference = max(float(np.abs(a - b).max()) for frame_levels in levels
                     for pair in zip(torch_pnet(frame_levels), openvino_pnet(frame_levels)) for a, b in zip(*pair))
    print(f"{len(frames)} half-size frames of {frames[0].shape[1]}x{frames[0].shape[0]}, {len(levels[0])} pyramid "
          f"levels each, {args.threads} thread(s)")
    print(f"core.mtcnn whole cascade: {whole:.1f} ms/frame")
    print(f"PNet over the pyramid: torch {torch_ms:.1f} ms/frame, openvino {openvino_ms:.1f} ms/frame "
          f"({torch_ms / openvino_ms:.2f}x); largest output difference {difference:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
