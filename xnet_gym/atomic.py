"""Atomic file writes: a crash or an error never leaves a half-written file at the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it into place.
    The temporary name ends with the target's suffix, so writers that add one (numpy) don't."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path(".")


def _can_create_in(folder: Path) -> str | None:
    """None if a file can be created in `folder` (tried, then removed), else the reason."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".xnet-gym-probe.")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def output_path_problem(path, kind: str = "file") -> str | None:
    """Why `path` cannot receive an output `kind` ("file" or "folder"), or None. Checked before
    any work starts, so a long run never ends in a traceback from its last write: a file or
    folder in the way, a parent that is a file, or a place where nothing can be created
    (/proc, a read-only mount). Nothing is created."""
    path = Path(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            return "is a folder; give a file name"
        if kind == "folder" and not path.is_dir():
            return "is a file; give a folder"
    parent = path if kind == "folder" else (path.parent if str(path.parent) else Path("."))
    nearest = _nearest_existing(parent)
    if not nearest.is_dir():
        return f"{nearest} is a file, not a folder"
    reason = _can_create_in(nearest)
    if reason is not None:
        return f"nothing can be written under {nearest} ({reason})"
    return None
