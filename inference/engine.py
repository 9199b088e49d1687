"""The classifier's inference engine: PyTorch eager (the default) or OpenVINO on the CPU.

OpenVINO converts each checkpoint's classifier once (openvino.convert_model on the PyTorch model, weights kept in
fp32) and keeps the converted model in a cache folder, under a key hashed from the checkpoint file's bytes, its
card as used, the input size and the OpenVINO version: a changed checkpoint or card gets a new key and is converted
again, never served from an older conversion. --precision becomes OpenVINO's inference precision hint; a precision
the CPU cannot run natively is refused, because OpenVINO would otherwise quietly run fp32 instead.

Everything that can refuse the engine (no OpenVINO, a CUDA device, a precision the CPU lacks) is checked by
`refusal` before any model is loaded or any video read.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ENGINES = ("torch", "openvino")
# --precision -> (OpenVINO's inference precision hint, the CPU capability it needs natively)
OPENVINO_PRECISIONS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}
CACHE_FORMAT = 1  # bump when the cached files change meaning
CHUNK = 1 << 22
# Crops per OpenVINO inference call. The CPU plugin keeps each request's intermediate buffers at the size of the
# largest batch it has seen: a B7 at 380 px holds 4.6 GiB after a call with 64 crops, so the 7-model ensemble
# would need over 30 GiB. In calls of 4 it holds about 0.2 GiB more than its weights, and B7 ran faster in calls
# of 1-8 crops than of 64 (docs/engine.md). Every crop's logit is the same either way.
OPENVINO_CROPS_PER_CALL = 4


class EngineError(RuntimeError):
    """The engine cannot run as asked; the message says why and what to do instead."""


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/dfdc-deepfake/openvino, else ~/.cache/dfdc-deepfake/openvino."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfdc-deepfake" / "openvino"


def _device_type(device: str | torch.device | None) -> str:
    if isinstance(device, torch.device):
        return device.type
    if not device or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device).split(":")[0]


def openvino_precision(precision: str) -> str:
    """--precision for OpenVINO: auto is fp32, as PyTorch on the CPU."""
    return "fp32" if precision == "auto" else precision


def refusal(engine: str, device: str | torch.device | None, precision: str = "auto") -> str | None:
    """Why `engine` cannot run on `device` at `precision` here, or None. Loads nothing but OpenVINO itself."""
    if engine == "torch":
        return None
    if engine != "openvino":
        return f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}"
    if _device_type(device) != "cpu":
        return (f"--engine openvino runs the classifier on the CPU only, and the device is {device} "
                f"({_device_type(device)}); "
                f"use --device cpu, or --engine torch on the GPU")
    try:
        import openvino as ov
    except ImportError as err:
        return f"--engine openvino needs the openvino package ({err}); pip install -r requirements.txt"
    try:
        core = ov.Core()
        if "CPU" not in core.available_devices:
            return "--engine openvino: OpenVINO finds no usable CPU device here; use --engine torch"
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError as err:
        return f"--engine openvino: OpenVINO cannot start on this machine ({err}); use --engine torch"
    precision = openvino_precision(precision)
    if precision not in OPENVINO_PRECISIONS:
        return f"--engine openvino does not run --precision {precision}"
    needed = OPENVINO_PRECISIONS[precision][1]
    if needed not in capabilities:
        return (f"--engine openvino --precision {precision}: this CPU has no native {needed} (OpenVINO reports "
                f"{', '.join(capabilities)}; bf16 needs AVX512_BF16 or AMX) and OpenVINO would silently run fp32; "
                f"use --precision fp32")
    return None


def model_dtype(engine: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype to load the PyTorch models (and normalise the crops) in: OpenVINO converts from fp32 and applies
    the precision itself."""
    return torch.float32 if engine == "openvino" else dtype


def run_label(engine: str, precision: str, dtype: torch.dtype) -> str:
    """The precision entry of the progress file's run key: unchanged for torch, so earlier progress stays valid."""
    return str(dtype) if engine == "torch" else f"openvino {openvino_precision(precision)}"


# ---------------------------------------------------------------- the cache

def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cache_key(checkpoint: Path, card: dict, input_size: int) -> str:
    """What a conversion depends on: the checkpoint's bytes, its card as used, the input side, OpenVINO's version.
    A calibration given with --calibration is left out: it maps video scores, outside the network (a calibration
    stored in the checkpoint changes its bytes anyway)."""
    import openvino as ov

    card = {name: value for name, value in card.items() if name != "calibration"}
    described = json.dumps({"format": CACHE_FORMAT, "checkpoint_sha256": file_digest(checkpoint), "card": card,
                            "input_size": input_size, "openvino": ov.__version__}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


def convert_classifier(model: torch.nn.Module, input_size: int, target: Path, source: str) -> None:
    """Convert `model` (fp32, eval) for inputs (any batch, 3, input_size, input_size) and save it as
    target/model.xml + .bin, whole or not at all (written beside, then renamed). EngineError names `source`."""
    import openvino as ov

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        example = torch.zeros(1, 3, input_size, input_size)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
            # tracing here, without the trace check, halves convert_model's time on a whole module
            traced = torch.jit.trace(model.float().eval(), example, check_trace=False)
            converted = ov.convert_model(traced, example_input=example,
                                         input=[ov.PartialShape([-1, 3, input_size, input_size])])
        ov.save_model(converted, staging / "model.xml", compress_to_fp16=False)  # fp16 weights would move scores
        (staging / "source.json").write_text(json.dumps({"checkpoint": source, "openvino": ov.__version__}))
        try:
            staging.rename(target)
        except OSError:  # another process converted the same checkpoint meanwhile: keep theirs
            if not (target / "model.xml").is_file():
                raise
    except Exception as err:
        raise EngineError(f"{source}: OpenVINO could not convert the classifier ({type(err).__name__}: "
                          f"{_first_lines(err)}); use --engine torch") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _first_lines(err: Exception, count: int = 3) -> str:
    """OpenVINO's messages run to pages; their first lines say what failed."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:count])[:400] or "no message"


class OpenVinoClassifier:
    """Called like the PyTorch classifier on a normalised float batch (N, 3, S, S); returns the logits (N, 1),
    inferred OPENVINO_CROPS_PER_CALL crops at a time."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().cpu().float().numpy()
        logits = []
        for start in range(0, len(batch), OPENVINO_CROPS_PER_CALL):
            self.request.infer({0: np.ascontiguousarray(batch[start:start + OPENVINO_CROPS_PER_CALL])})
            logits.append(self.request.get_output_tensor(0).data.copy())
        return torch.from_numpy(np.concatenate(logits))


@dataclass
class Conversion:
    """What preparing one checkpoint cost: converted now (or found in the cache), seconds to convert and compile."""

    path: Path
    converted: bool
    convert_seconds: float
    compile_seconds: float


def compile_options(precision: str, threads: int) -> dict:
    """One stream that uses `threads` cores for each call (the pipeline calls the model one batch at a time)."""
    return {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[openvino_precision(precision)][0],
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads)}


def openvino_classifier(model: torch.nn.Module, checkpoint: Path, card: dict, input_size: int, precision: str,
                        cache_dir: Path, threads: int | None = None) -> tuple[OpenVinoClassifier, Conversion]:
    """The checkpoint's classifier compiled by OpenVINO, converted first unless the cache holds it."""
    import openvino as ov

    target = Path(cache_dir) / cache_key(checkpoint, card, input_size)
    started = time.perf_counter()
    converted = not (target / "model.xml").is_file()
    if converted:
        convert_classifier(model, input_size, target, str(checkpoint))
    convert_seconds = time.perf_counter() - started
    try:
        compiled = ov.Core().compile_model(str(target / "model.xml"), "CPU",
                                           compile_options(precision, threads or torch.get_num_threads()))
    except RuntimeError as err:
        raise EngineError(f"{checkpoint}: OpenVINO could not compile the converted classifier in {target} "
                          f"({_first_lines(err)}); delete that folder to convert again, or use "
                          f"--engine torch") from err
    return OpenVinoClassifier(compiled), Conversion(Path(checkpoint), converted, convert_seconds,
                                                    time.perf_counter() - started - convert_seconds)


def prepare_models(engine: str, models: Sequence[torch.nn.Module], checkpoints: Sequence[Path],
                   cards: Sequence[dict], input_size: int, precision: str = "auto", cache_dir: Path | None = None,
                   compile_model: bool = False, report=None) -> list:
    """The callables the pipeline classifies with: the channels-last PyTorch models (torch), or each checkpoint's
    OpenVINO model (openvino); `report(Conversion)` is told what each conversion cost."""
    import kernel_utils as ku

    if engine == "torch":
        return [ku.inference_model(model, compile_model) for model in models]
    prepared = []
    for model, checkpoint, card in zip(models, checkpoints, cards):
        classifier, conversion = openvino_classifier(model, checkpoint, card, input_size, precision,
                                                     cache_dir or default_cache_dir())
        if report is not None:
            report(conversion)
        prepared.append(classifier)
    return prepared
