"""facenet-pytorch's MTCNN cascade on CPU, bit-identical to `MTCNN.detect` and faster (bench/mtcnn.py measures both).

Same networks, same weights, same float operations in the same memory layouts; three things are done
differently because they give the same bits for less work:
- max pooling (ceil mode) is a few strided `torch.maximum`s per axis: max does not depend on order;
- area resampling (the image pyramid and the 24/48 px candidate patches) reads window sums from one
  integral image per batch: the pixels are integers, so every sum is exact, and the division is done as
  PyTorch's `adaptive_avg_pool2d` does it (`sum / kh / kw` in float32);
- the candidate patches of a stage are resampled together instead of one call per candidate.
Where a window sum could exceed float32's exact integers, that resize falls back to `F.interpolate`.
facenet-pytorch's own helpers (box generation, NMS, box regression) are called as they are.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, fixed_batch_process,
                                                       generateBoundingBox, pad, rerec)
from torchvision.ops import batched_nms

_EXACT_FLOAT32 = 2 ** 24  # integers up to this are exact in float32
_MAX_PIXEL = 255


class StridedMaxPool(torch.nn.Module):
    """`max_pool2d(kernel, stride, ceil_mode=True)` (no padding, kernel >= 2) as strided maxima along each axis."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _pool_axis(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        size = x.shape[dim]
        windows = math.ceil((size - self.kernel) / self.stride) + 1
        step = (slice(None),) * dim + (slice(None, None, self.stride),)

        def every_stride_from(offset: int) -> torch.Tensor:
            """Element `offset` of each window; in ceil mode the last windows may lack it (they hang over the edge)."""
            count = min(windows, (size - offset + self.stride - 1) // self.stride)
            return x.narrow(dim, offset, (count - 1) * self.stride + 1)[step]

        first, second = every_stride_from(0), every_stride_from(1)
        result = torch.empty_like(first)
        both = second.shape[dim]
        torch.maximum(first.narrow(dim, 0, both), second, out=result.narrow(dim, 0, both))
        if both < windows:
            result.narrow(dim, both, windows - both).copy_(first.narrow(dim, both, windows - both))
        for offset in range(2, self.kernel):
            later = every_stride_from(offset)
            head = result.narrow(dim, 0, later.shape[dim])
            torch.maximum(head, later, out=head)
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool_axis(self._pool_axis(x, 2), 3)


def use_strided_pools(mtcnn) -> None:
    """Swap every ceil-mode MaxPool2d of the three networks for the exact StridedMaxPool."""
    for network in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        for name, layer in list(network.named_children()):
            if isinstance(layer, torch.nn.MaxPool2d):
                setattr(network, name, StridedMaxPool(layer.kernel_size, layer.stride))


def _area_windows(start, length, out_size: int):
    """adaptive_avg_pool2d's windows over [start, start + length): first index and one past the last."""
    o = torch.arange(out_size)
    first = start[..., None] + (o * length[..., None]) // out_size
    last = start[..., None] + ((o + 1) * length[..., None] + out_size - 1) // out_size
    return first, last


class IntegralImage:
    """Summed-area table of a uint8 NHWC batch, for exact area resampling of the whole image or of patches."""

    def __init__(self, frames: np.ndarray):
        _, h, w, _ = frames.shape
        if _MAX_PIXEL * h * w < 2 ** 31:
            table = np.stack([cv2.integral(frame) for frame in frames])  # int32, a zero first row and column
        else:  # float64 holds these sums exactly, int32 would overflow
            table = np.stack([cv2.integral(frame, sdepth=cv2.CV_64F) for frame in frames]).astype(np.int64)
        self.table = torch.from_numpy(table)
        self.frames = frames

    @property
    def _frame_size(self) -> int:
        return self.table.shape[1] * self.table.shape[2]

    def _window_sums(self, frame_start: torch.Tensor, rows: tuple, cols: tuple) -> torch.Tensor:
        """Sum of each window rows x cols (first, one past last; broadcast against frame_start), (..., OH, OW, C):
        four corners of the summed-area table, gathered from its flat view."""
        width, channels = self.table.shape[2:]
        flat = self.table.view(-1, channels)

        def corner(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
            at = frame_start + row[..., :, None] * width + col[..., None, :]
            return flat.index_select(0, at.reshape(-1)).view(*at.shape, channels)

        return corner(rows[1], cols[1]) - corner(rows[0], cols[1]) - corner(rows[1], cols[0]) + corner(rows[0], cols[0])

    def _as_float(self) -> torch.Tensor:
        """The batch as facenet-pytorch resamples it (float32 NCHW), for the windows too large for exact sums."""
        return torch.from_numpy(self.frames).permute(0, 3, 1, 2).to(torch.float32)

    def _mean(self, sums: torch.Tensor, rows: tuple, cols: tuple) -> torch.Tensor:
        kh = (rows[1] - rows[0]).to(torch.float32)
        kw = (cols[1] - cols[0]).to(torch.float32)
        return sums.to(torch.float32) / kh[..., :, None, None] / kw[..., None, :, None]

    @staticmethod
    def _exact(rows: tuple, cols: tuple) -> bool:
        return int((rows[1] - rows[0]).max()) * int((cols[1] - cols[0]).max()) * _MAX_PIXEL < _EXACT_FLOAT32

    def resize(self, size: tuple[int, int]) -> torch.Tensor:
        """`F.interpolate(frames as float NCHW, size, mode="area")`, in the channels-last layout it has there."""
        _, h, w, _ = self.frames.shape
        rows = _area_windows(torch.tensor(0), torch.tensor(h), size[0])
        cols = _area_windows(torch.tensor(0), torch.tensor(w), size[1])
        if not self._exact(rows, cols):
            return F.interpolate(self._as_float(), size=size, mode="area")
        frame_start = torch.arange(len(self.frames))[:, None, None] * self._frame_size
        return self._mean(self._window_sums(frame_start, rows, cols), rows, cols).permute(0, 3, 1, 2)

    def resize_patches(self, frame_index, y0, y1, x0, x1, side: int) -> torch.Tensor:
        """Patches [y0, y1) x [x0, x1) of the given frames, each area-resampled to side x side, NCHW contiguous."""
        if len(frame_index) == 0:
            return torch.zeros(0, self.frames.shape[3], side, side)
        rows = _area_windows(torch.as_tensor(y0), torch.as_tensor(y1 - y0), side)
        cols = _area_windows(torch.as_tensor(x0), torch.as_tensor(x1 - x0), side)
        if not self._exact(rows, cols):
            reference = self._as_float()
            return torch.cat([F.interpolate(reference[i, :, a:b, c:d].unsqueeze(0), size=(side, side), mode="area")
                              for i, a, b, c, d in zip(frame_index, y0, y1, x0, x1)])
        frame_start = torch.as_tensor(frame_index)[:, None, None] * self._frame_size
        return self._mean(self._window_sums(frame_start, rows, cols), rows, cols).permute(0, 3, 1, 2).contiguous()


def _pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale = scale * factor
        side = side * factor
    return scales


def _normalise(patches: torch.Tensor) -> torch.Tensor:
    return (patches - 127.5) * 0.0078125


def _patches(image: IntegralImage, boxes: torch.Tensor, frame_index: torch.Tensor, side: int):
    """Candidate boxes clipped to the frame (facenet-pytorch's `pad`) and resampled; boxes with no pixel inside
    the frame are dropped (facenet-pytorch would fail on them)."""
    h, w = image.frames.shape[1:3]
    y, ey, x, ex = pad(boxes, w, h)
    inside = (ey > y - 1) & (ex > x - 1)
    y, ey, x, ex = (torch.from_numpy(v[inside]).long() for v in (y, ey, x, ex))
    kept = torch.from_numpy(inside)
    patches = image.resize_patches(frame_index[kept], y - 1, ey, x - 1, ex, side)
    return _normalise(patches), boxes[kept], frame_index[kept]


def _candidates(mtcnn, image: IntegralImage):
    """Stage 1: PNet over the image pyramid; squared boxes (K, 5) and their frame index."""
    h, w = image.frames.shape[1:3]
    found, frame_of = [], []
    for scale in _pyramid_scales(h, w, mtcnn.min_face_size, mtcnn.factor):
        level = _normalise(image.resize((int(h * scale + 1), int(w * scale + 1))))
        regression, probability = mtcnn.pnet(level)
        boxes, index = generateBoundingBox(regression, probability[:, 1], scale, mtcnn.thresholds[0])
        keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.5)
        found.append(boxes[keep])
        frame_of.append(index[keep])
    boxes, index = torch.cat(found), torch.cat(frame_of)
    keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7)
    boxes, index = boxes[keep], index[keep]
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = rerec(torch.stack([boxes[:, 0] + boxes[:, 5] * width, boxes[:, 1] + boxes[:, 6] * height,
                               boxes[:, 2] + boxes[:, 7] * width, boxes[:, 3] + boxes[:, 8] * height,
                               boxes[:, 4]]).permute(1, 0))
    return boxes, index


def _refined(mtcnn, image: IntegralImage, boxes: torch.Tensor, index: torch.Tensor):
    """Stage 2: RNet on 24 px patches of the candidates."""
    patches, boxes, index = _patches(image, boxes, index, 24)
    if len(boxes) == 0:
        return boxes, index
    regression, probability = fixed_batch_process(patches, mtcnn.rnet)
    passed = probability[:, 1] > mtcnn.thresholds[1]
    boxes = torch.cat((boxes[passed, :4], probability[passed, 1].unsqueeze(1)), dim=1)
    index, regression = index[passed], regression[passed]
    keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7)
    return rerec(bbreg(boxes[keep], regression[keep])), index[keep]


def _final(mtcnn, image: IntegralImage, boxes: torch.Tensor, index: torch.Tensor):
    """Stage 3: ONet on 48 px patches; boxes, frame index and the five landmarks (K, 5, 2)."""
    patches, boxes, index = _patches(image, boxes, index, 48)
    if len(boxes) == 0:
        return boxes, index, torch.zeros(0, 5, 2)
    regression, marks, probability = fixed_batch_process(patches, mtcnn.onet)
    passed = probability[:, 1] > mtcnn.thresholds[2]
    marks, regression, index = marks[passed], regression[passed], index[passed]
    boxes = torch.cat((boxes[passed, :4], probability[passed, 1].unsqueeze(1)), dim=1)
    box_w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    box_h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = torch.stack((box_w * marks[:, :5] + boxes[:, 0:1] - 1,
                          box_h * marks[:, 5:] + boxes[:, 1:2] - 1), dim=2)
    boxes = bbreg(boxes, regression)
    keep = batched_nms_numpy(boxes[:, :4], boxes[:, 4], index, 0.7, "Min")
    return boxes[keep], index[keep], points[keep]


def detect_faces(mtcnn, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The three-stage cascade of facenet-pytorch on uint8 RGB frames (N, H, W, 3), CPU only.

    Per frame, in facenet-pytorch's order: boxes (K, 5) float32 (x1, y1, x2, y2, probability) and landmarks
    (K, 5, 2). `mtcnn` must have had `use_strided_pools` applied.
    """
    image = IntegralImage(np.ascontiguousarray(frames))
    points = torch.zeros(0, 5, 2)
    with torch.no_grad():
        boxes, index = _candidates(mtcnn, image)
        if len(boxes) > 0:
            boxes, index = _refined(mtcnn, image, boxes, index)
        if len(boxes) > 0:
            boxes, index, points = _final(mtcnn, image, boxes, index)
    boxes, points, index = boxes.numpy(), points.numpy(), index.numpy()
    return [(boxes[index == i], points[index == i]) for i in range(len(frames))]
