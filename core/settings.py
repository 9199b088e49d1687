"""Settings files: reading a JSON object with a message naming the file, and comparing recorded settings with
requested ones, for messages that name exactly what differs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.damage import read_json


def read_json_object(path: Path, what: str, remedy: str) -> dict:
    """The JSON object in `path`; ValueError naming the file, `what` it should be and `remedy` otherwise."""
    value = read_json(path, ValueError, what, remedy)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, found {type(value).__name__}; {remedy}")
    return value


def differences(recorded: Any, wanted: Any, recorded_label: str = "on disk", wanted_label: str = "asked",
                prefix: str = "") -> list[str]:
    """'key: <recorded_label> X, <wanted_label> Y' for every differing value; dicts and equally long lists of
    dicts are compared element by element, with dotted keys (cards.0.input_size)."""
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        lines = []
        for key in sorted(recorded.keys() | wanted.keys(), key=str):
            lines += differences(recorded.get(key), wanted.get(key), recorded_label, wanted_label, f"{prefix}{key}.")
        return lines
    if (isinstance(recorded, list) and isinstance(wanted, list) and len(recorded) == len(wanted)
            and any(isinstance(item, dict) for item in recorded)):
        lines = []
        for index, (old, new) in enumerate(zip(recorded, wanted)):
            lines += differences(old, new, recorded_label, wanted_label, f"{prefix}{index}.")
        return lines
    if recorded == wanted:
        return []
    return [f"{prefix.rstrip('.') or 'value'}: {recorded_label} {recorded!r}, {wanted_label} {wanted!r}"]
