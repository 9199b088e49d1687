"""dlib's 68-point face landmarks: one loader for the preprocessing step and the training cut-outs.

The model file ships in the face_recognition_models wheel; the HOG face detector is built into dlib.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from collections.abc import Sequence

import numpy as np

NUM_POINTS = 68


def dlib_shape_predictor_path() -> Path:
    """The 68-point model file of the face_recognition_models package, found without importing it
    (its __init__ imports pkg_resources, which current setuptools no longer provides)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip package face_recognition_models is not installed (it is in requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


@lru_cache(maxsize=1)
def dlib_models():
    """(HOG face detector, 68-point predictor), loaded once per process."""
    import dlib

    path = dlib_shape_predictor_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib 68-point landmark model missing")
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def hog_face_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) of the first face dlib's HOG detector finds in an RGB uint8 image, or None."""
    detector, _predictor = dlib_models()
    faces = detector(image)
    if len(faces) == 0:
        return None
    return faces[0].left(), faces[0].top(), faces[0].right(), faces[0].bottom()


def predict_landmarks_68(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """(68, 2) int32 x, y of the face in box (x1, y1, x2, y2) of an RGB uint8 image."""
    import dlib

    _detector, predictor = dlib_models()
    shape = predictor(image, dlib.rectangle(*(int(v) for v in box)))
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(NUM_POINTS)], dtype=np.int32)


def landmarks_68(image: np.ndarray) -> np.ndarray | None:
    """The 68 points of the first HOG face, or None when HOG finds none."""
    box = hog_face_box(image)
    return None if box is None else predict_landmarks_68(image, box)
