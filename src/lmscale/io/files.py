"""Writing results so that a killed job leaves the old file or none, never half of one; and the
folder a command works in, found from the files its rule names."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w"):
    """Open a temporary file beside `path`; rename it over `path` only when the block succeeds.

    A job killed mid-write then leaves the old file or none, never half of one. A disk that fills
    up meanwhile is an OSError (ENOSPC) naming `path`, where Python's own names no file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with _naming_a_full_disk(path, tmp):
            handle = open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
        try:
            with _naming_a_full_disk(path, tmp):  # a block that writes several files: the innermost's name
                yield handle
        except BaseException:
            _close_quietly(handle)
            raise
        with _naming_a_full_disk(path, tmp):
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                _close_quietly(handle)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _no_space(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@contextlib.contextmanager
def _naming_a_full_disk(path: Path, tmp: Path):
    """An ENOSPC that names no file (a write to an open file, its flush) or the temporary file names `path`."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC and error.filename in (None, tmp, str(tmp)):
            raise _no_space(path) from error
        raise


def _close_quietly(handle) -> None:
    """Closes `handle`; what it could not write goes with the temporary file."""
    with contextlib.suppress(OSError):
        handle.close()


def atomic_write_json(path: str | Path, payload, sort_keys: bool = True) -> None:
    """Indented JSON; `sort_keys=False` keeps the payload's own key order (the laws, the task suite)."""
    with atomic_writer(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=sort_keys)
        handle.write("\n")


def read_json(path: str | Path):
    """A JSON file; one that is not JSON (a YAML file given for it, bytes that are not text) is a
    ValueError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None


def atomic_copy(source: str | Path, path: str | Path) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(Path(source).read_bytes())


def folder_of(paths: list[str | Path], names: list[str]) -> Path:
    """The one folder that holds `paths`, which must be the files `names` in it (any order).

    A rule names the files a job reads or writes; a stage that works on a folder (a corpus's
    splits, a Hugging Face checkpoint) finds it here, once, and a wrong file given by hand is
    refused with what was expected.
    """
    folders = {Path(path).parent for path in paths}
    if len(folders) != 1 or sorted(Path(path).name for path in paths) != sorted(names):
        given = " ".join(str(path) for path in paths) or "nothing"
        raise ValueError(f"expected {', '.join(names)} in one folder, got {given}")
    return folders.pop()
