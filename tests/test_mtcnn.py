"""core.mtcnn gives facenet-pytorch's MTCNN results bit for bit, on real faces, and its pieces equal PyTorch's."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN
from skimage import data

from helpers import run_script
from core import faces
from core.mtcnn import IntegralImage, StridedMaxPool


@pytest.mark.parametrize("shape,kernel,stride", [((2, 10, 251, 191), 2, 2), ((3, 10, 20, 21), 2, 2),
                                                 ((5, 28, 22, 22), 3, 2), ((5, 48, 10, 9), 3, 2),
                                                 ((4, 64, 4, 5), 2, 2), ((1, 3, 3, 3), 3, 2)])
def test_strided_max_pool_equals_ceil_mode_max_pool(shape, kernel, stride):
    x = torch.randn(shape)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    expected = F.max_pool2d(x, kernel, stride, ceil_mode=True)
    assert torch.equal(StridedMaxPool(kernel, stride)(x), expected)
    assert torch.equal(StridedMaxPool(kernel, stride)(channels_last), expected)


def _as_float_nchw(frames: np.ndarray) -> torch.Tensor:
    """What facenet-pytorch resamples: the uint8 batch permuted to NCHW and cast to float32."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).to(torch.float32)


@pytest.mark.parametrize("size", [(253, 193), (126, 96), (30, 23), (12, 12), (421, 320), (500, 700)])
def test_area_resize_equals_interpolate_area(size):
    frames = np.random.default_rng(0).integers(0, 256, (2, 420, 320, 3), dtype=np.uint8)
    resized = IntegralImage(frames).resize(size)
    expected = F.interpolate(_as_float_nchw(frames), size=size, mode="area")
    assert torch.equal(resized, expected)
    assert resized.is_contiguous(memory_format=torch.channels_last)  # the layout PNet sees in facenet-pytorch


def test_patch_resize_equals_interpolate_area_per_patch():
    frames = np.random.default_rng(1).integers(0, 256, (3, 200, 150, 3), dtype=np.uint8)
    boxes = [(0, 10, 70, 5, 60), (2, 0, 200, 0, 150), (1, 150, 160, 140, 150), (0, 199, 200, 149, 150)]
    index, y0, y1, x0, x1 = (torch.tensor(v) for v in zip(*boxes))
    for side in (24, 48):
        patches = IntegralImage(frames).resize_patches(index, y0, y1, x0, x1, side)
        reference = _as_float_nchw(frames)
        expected = torch.cat([F.interpolate(reference[i, :, a:b, c:d].unsqueeze(0), size=(side, side), mode="area")
                              for i, a, b, c, d in boxes])
        assert torch.equal(patches, expected)
        assert patches.is_contiguous()


def test_windows_too_large_for_exact_float32_sums_fall_back_to_interpolate():
    frames = np.full((1, 1500, 1500, 3), 255, dtype=np.uint8)
    frames[0, ::7, ::3] = 1  # window sums of 375 x 375 pixels pass 2**24: float32 would round them
    expected = F.interpolate(_as_float_nchw(frames), size=(4, 4), mode="area")
    assert torch.equal(IntegralImage(frames).resize((4, 4)), expected)


def _facenet_mtcnn(thresholds):
    return MTCNN(margin=0, thresholds=list(thresholds), keep_all=True, select_largest=True, post_process=False)


def _facenet_results(frames: np.ndarray, thresholds):
    boxes, _, points = _facenet_mtcnn(thresholds).detect(frames, landmarks=True)
    return [None if b is None else (np.asarray(b, np.float64), np.asarray(p, np.float64))
            for b, p in zip(boxes, points)]


def _astronaut_frames(height: int, width: int, face_sizes: list[int]) -> np.ndarray:
    """One frame per size: the astronaut scaled to that size, pasted on a textured background (more candidates)."""
    astronaut = data.astronaut()
    background = cv2.resize(data.coffee(), (width, height))
    frames = []
    for k, size in enumerate(face_sizes):
        frame = background.copy()
        top, left = (height - size) * k // max(len(face_sizes), 2), (width - size) // 2
        frame[top:top + size, left:left + size] = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    return np.stack(frames)


@pytest.mark.parametrize("thresholds", [faces.DETECT_THRESHOLDS, faces.LANDMARK_THRESHOLDS, (0.5, 0.5, 0.5)])
def test_detect_batch_gives_facenet_pytorch_boxes_and_landmarks_bit_for_bit(thresholds):
    frames = _astronaut_frames(270, 480, [120, 200, 260])
    noise = np.random.default_rng(2).integers(0, 256, frames[0].shape, dtype=np.uint8)
    frames = np.concatenate([frames, noise[None]])
    ours = faces.detect_batch(faces.make_mtcnn(thresholds), list(frames), landmarks=True)
    theirs = _facenet_results(frames, thresholds)
    assert sum(found is not None for found in theirs) >= 3  # the astronaut is found in every pasted frame
    for mine, reference in zip(ours, theirs):
        if reference is None:
            assert mine is None
            continue
        assert np.array_equal(mine[0], reference[0])
        assert np.array_equal(mine[1], reference[1])


def test_the_cascade_is_chosen_where_the_detector_is_built_and_both_agree():
    from inference.pipeline import PredictionConfig, _make_mtcnn

    frames = list(_astronaut_frames(270, 480, [160]))
    ours = faces.make_mtcnn(faces.INFERENCE_THRESHOLDS)
    theirs = _make_mtcnn(PredictionConfig(core_cascade_on_cpu=False))
    assert ours.core_cascade and not theirs.core_cascade  # the pipeline's config reaches every process's detector
    strided = [any(isinstance(m, StridedMaxPool) for m in mtcnn.modules()) for mtcnn in (ours, theirs)]
    assert strided == [True, False]  # facenet-pytorch's networks left untouched where its own code runs
    found, reference = faces.detect_batch(ours, frames), faces.detect_batch(theirs, frames)
    assert found[0] is not None and np.array_equal(found[0], reference[0])


def test_detect_batch_on_crops_of_every_shape_equals_facenet_pytorch():
    astronaut = data.astronaut()
    mtcnn = faces.make_mtcnn(faces.LANDMARK_THRESHOLDS)
    for height, width in [(131, 95), (250, 190), (341, 251), (420, 320), (33, 700)]:
        crop = cv2.resize(astronaut[40:200, 150:300], (width, height), interpolation=cv2.INTER_AREA)
        ours = faces.detect_batch(mtcnn, [crop], landmarks=True)[0]
        theirs = _facenet_results(crop[None], faces.LANDMARK_THRESHOLDS)[0]
        if theirs is None:
            assert ours is None
        else:
            assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])


def test_patches_of_frames_too_large_for_an_int32_integral_image():
    frames = np.random.default_rng(3).integers(0, 256, (1, 2900, 2950, 3), dtype=np.uint8)  # 255 * h * w > 2**31
    y0, y1, x0, x1 = torch.tensor([2700]), torch.tensor([2890]), torch.tensor([2800]), torch.tensor([2950])
    patches = IntegralImage(frames).resize_patches(torch.tensor([0]), y0, y1, x0, x1, 48)
    expected = F.interpolate(_as_float_nchw(frames)[:, :, 2700:2890, 2800:2950], size=(48, 48), mode="area")
    assert torch.equal(patches, expected)


def test_detector_bench_runs_on_demo_videos_and_finds_the_detectors_identical(demo_root, python):
    result = run_script(python, "bench/mtcnn.py", demo_root, "--videos", "2", timeout=600)
    assert "2 real videos" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "ms" in line]
    assert len(lines) == 2 and all(line.endswith("bit-identical") for line in lines), result.stdout
