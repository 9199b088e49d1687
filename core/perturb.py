"""Perturbed copies of a video: re-encoding, resizing, frame dropping, blur and noise, written with PyAV.

A spec is a short string; specs compose with "+" and apply left to right, in one decode and one encode:

    none           the video as it is (no copy is written)
    crf:N          H.264 (libx264) at constant rate factor N, 0-51 (without it the copy is encoded at CRF 17)
    scale:F        down to F x the size (INTER_AREA) and back up to the original size (bicubic), as a platform
                   that stores a small rendition and a player that enlarges it; 0 < F <= 1
    height:H       resized to H lines (aspect kept, even width), stays that size; never enlarges
    fps:F          F x the frame rate, frames dropped evenly; 0 < F <= 1
    rate:R         at most R frames per second (frames dropped evenly); never adds frames
    blur:SIGMA     Gaussian blur of standard deviation SIGMA pixels
    noise:SIGMA    additive Gaussian noise of SIGMA grey levels, the same pattern on every run (seeded by the
                   video's name)
    messenger      height:480+rate:15+crf:32, a phone messenger's re-encode

Every copy drops the audio and keeps the frame timing: a kept frame is shown at the time it had in the source,
so the duration is unchanged and the frame rate drops only where frames were dropped.
"""
from __future__ import annotations

import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from core.video import iter_frames, open_video

DEFAULT_CRF = 17  # x264's "visually lossless": a copy that asks for no compression gets as little as sensible
X264_PRESET = "veryfast"  # x264 speed preset of every copy; CRF means slightly different sizes per preset
ALIASES = {"messenger": "height:480+rate:15+crf:32"}
NONE = "none"


class PerturbationError(ValueError):
    """An unknown or malformed spec; the message names it."""


def _number(kind):
    def parse(text: str, spec: str):
        try:
            return kind(text)
        except ValueError:
            raise PerturbationError(f"{spec}: {text!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
    return parse


# name -> (value parser, check, what the check requires)
OPERATIONS = {
    "crf": (_number(int), lambda v: 0 <= v <= 51, "an integer from 0 to 51"),
    "scale": (_number(float), lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    "height": (_number(int), lambda v: v >= 2, "a height of at least 2 lines"),
    "fps": (_number(float), lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    "rate": (_number(float), lambda v: v > 0, "a positive frame rate"),
    "blur": (_number(float), lambda v: v > 0, "a positive sigma in pixels"),
    "noise": (_number(float), lambda v: v >= 0, "a sigma in grey levels, >= 0"),
}


@dataclass(frozen=True)
class Perturbation:
    """A parsed spec: `text` as the user wrote it, `steps` the (name, value) operations in order."""

    text: str
    steps: tuple[tuple[str, float], ...]

    @property
    def is_identity(self) -> bool:
        return not self.steps

    @property
    def slug(self) -> str:
        """A folder name for the spec's cached copies."""
        return self.text.replace(":", "-").replace("+", "_")

    @property
    def crf(self) -> int:
        crfs = [value for name, value in self.steps if name == "crf"]
        return int(crfs[-1]) if crfs else DEFAULT_CRF


def parse_spec(text: str) -> Perturbation:
    """'scale:0.5+crf:32' -> Perturbation; PerturbationError naming the spec for anything unknown or malformed."""
    text = text.strip()
    if text == NONE:
        return Perturbation(NONE, ())
    steps = []
    for part in text.split("+"):
        part = part.strip()
        if part in ALIASES:
            steps += parse_spec(ALIASES[part]).steps
            continue
        if part == NONE:
            raise PerturbationError(f"{text}: 'none' stands alone; it cannot be combined with other steps")
        name, sep, raw = part.partition(":")
        if name not in OPERATIONS or not sep:
            known = ", ".join([NONE, *(f"{n}:X" for n in OPERATIONS), *ALIASES])
            raise PerturbationError(f"{text}: unknown perturbation {part!r} (known: {known}; compose with +)")
        parse, check, need = OPERATIONS[name]
        value = parse(raw, text)
        if not check(value):
            raise PerturbationError(f"{text}: {name} needs {need}, got {raw}")
        steps.append((name, value))
    if sum(name == "crf" for name, _ in steps) > 1:
        raise PerturbationError(f"{text}: one crf per spec (a copy is encoded once)")
    return Perturbation(text, tuple(steps))


# ---------------------------------------------------------------- frames

def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _scale_down_up(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _to_height(image: np.ndarray, lines: int) -> np.ndarray:
    height, width = image.shape[:2]
    if lines >= height:
        return image
    return cv2.resize(image, (_even(width * lines / height), lines - lines % 2), interpolation=cv2.INTER_AREA)


def _noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def apply_frame_steps(image: np.ndarray, steps, rng: np.random.Generator) -> np.ndarray:
    """The per-frame operations of `steps`, in order (crf, fps and rate act on the encode and the timing)."""
    for name, value in steps:
        if name == "scale" and value < 1:
            image = _scale_down_up(image, value)
        elif name == "height":
            image = _to_height(image, int(value))
        elif name == "blur":
            image = cv2.GaussianBlur(image, (0, 0), sigmaX=value, sigmaY=value)
        elif name == "noise" and value > 0:
            image = _noise(image, value, rng)
    height, width = image.shape[:2]
    return image[:height - height % 2, :width - width % 2]  # yuv420p needs even sides


def rate_factor(steps, source_rate: Fraction) -> Fraction:
    """The share of frames kept: the product of the fps factors, then capped by every rate limit."""
    factor = Fraction(1)
    for name, value in steps:
        if name == "fps":
            factor *= Fraction(value).limit_denominator(1000)
        elif name == "rate":
            factor = min(factor, Fraction(value).limit_denominator(1000) / source_rate)
    return factor


def keeps_frame(index: int, factor: Fraction) -> bool:
    """Evenly spread: frame i is kept when floor(i * factor) steps up (frame 0 always)."""
    return index == 0 or math.floor(index * factor) != math.floor((index - 1) * factor)


# ---------------------------------------------------------------- files

def source_rate(path: Path) -> Fraction:
    with open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return Fraction(rate)


def write_perturbed(source: Path, target: Path, perturbation: Perturbation, preset: str = X264_PRESET) -> None:
    """Write `perturbation` of `source` to `target` (H.264 in MP4, no audio), atomically: the file appears only
    when complete. VideoReadError (core.video) when the source cannot be read."""
    if perturbation.is_identity:
        raise ValueError("'none' has no copy: use the source itself")
    rate = source_rate(source)
    factor = rate_factor(perturbation.steps, rate)
    rng = np.random.default_rng(zlib.crc32(f"{perturbation.text}|{Path(source).name}".encode()))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".partial")
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4") as container:
            stream = None
            for index, image in iter_frames(source, keep=lambda i: keeps_frame(i, factor)):
                image = apply_frame_steps(image, perturbation.steps, rng)
                if stream is None:
                    stream = container.add_stream("libx264", rate=rate * factor)
                    stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                    stream.codec_context.time_base = 1 / rate  # pts = the source frame index: timing kept
                    stream.options = {"crf": str(perturbation.crf), "preset": preset}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = index, 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
