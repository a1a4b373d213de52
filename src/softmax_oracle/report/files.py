"""The files a run writes: their paths checked before the run starts (so that a bad path fails in
a second, not after an hour of checking), and each file written atomically (a reader, or a run
stopped half-way, sees the old file or the whole new one, never a part)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["OutputPathError", "check_writable_dir", "check_writable_file", "write_atomic"]

StrPath = str | os.PathLike[str]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the option, the path and the
    fix."""


def check_writable_file(path: StrPath, option: str) -> None:
    """Raise ``OutputPathError`` unless a file can be written at ``path`` (given as ``option``):
    its directory exists and takes new files, and ``path`` is not a directory."""
    p = Path(path)
    where = f"{option} {path}"
    if p.is_dir():
        raise OutputPathError(f"{where}: is a directory; give a file name, e.g. {option} "
                              f"{p / 'results.json'}")
    parent = p.absolute().parent
    if not parent.is_dir():
        existing = _nearest(parent)
        if not existing.is_dir():
            raise OutputPathError(f"{where}: {existing} is a file, not a directory; choose "
                                  f"another path")
        raise OutputPathError(f"{where}: the directory {parent} does not exist; create it first "
                              f"or choose another path")
    _probe(parent, where)


def check_writable_dir(path: StrPath, option: str) -> None:
    """Raise ``OutputPathError`` unless ``path`` (given as ``option``) is a directory that takes
    new files, or can be created as one."""
    p = Path(path)
    where = f"{option} {path}"
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{where}: is a file, not a directory; give a directory (created "
                              f"if missing), e.g. {option} softmax-oracle-report")
    existing = _nearest(p.absolute())
    if not existing.is_dir():
        raise OutputPathError(f"{where}: {existing} is a file, so no directory can be created "
                              f"there; choose another path")
    _probe(existing, where)


def write_atomic(path: StrPath, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``: into a new file in the same directory, then renamed
    over ``path`` in one step (``os.replace``)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # "x": a new file, the usual permissions
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _probe(directory: Path, where: str) -> None:
    """Create and remove a file in ``directory``: the only test of writability that is right for
    every user, permission scheme and read-only file system."""
    probe = directory / f".softmax-oracle-probe.{secrets.token_hex(4)}"
    try:
        probe.open("x").close()
    except OSError as e:
        raise OutputPathError(f"{where}: cannot create files in {directory} "
                              f"({e.strerror or e}); choose another path") from None
    with contextlib.suppress(OSError):
        probe.unlink()


def _nearest(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a file, where the path runs through one)."""
    while not path.exists():
        path = path.parent
    return path
