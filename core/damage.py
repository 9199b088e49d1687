"""Reading files that may be damaged (cut short, bit-flipped, replaced by another kind of file).

A parser fed damaged bytes can raise almost anything (IndexError, struct.error, KeyError, UnicodeDecodeError, ...).
Each reader wraps its parsing in `named_errors`, which turns whatever escapes into the reader's own error type,
with a message that names the file, what it should have been and what to do. An error of the reader's own type
whose message already names the file passes unchanged.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def named_errors(path: Path, error: type[Exception], what: str, remedy: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:  # a damaged file can make any parser fail in any way
        if isinstance(err, error) and str(path) in str(err):
            raise
        reason = str(err) or "no detail"
        raise error(f"{path}: cannot read {what} ({type(err).__name__}: {reason}); {remedy}") from err


def read_json(path: Path, error: type[Exception], what: str, remedy: str):
    """The JSON value in `path`; `error` naming the file when it is missing, empty, not UTF-8 or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    with named_errors(path, error, what, remedy):
        data = path.read_bytes()
        if not data:
            raise error(f"{path}: empty file (0 bytes), not {what}; {remedy}")
        return json.loads(data.decode("utf-8"))


def read_text(path: Path, error: type[Exception], what: str, remedy: str) -> str:
    """The UTF-8 text of `path`; `error` naming the file when it is missing or not text."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    with named_errors(path, error, what, remedy):
        return path.read_bytes().decode("utf-8")
