"""The whole input of a refutation, kept in a file for ``softmax-oracle replay FILE``.

A refutation prints its input as Python literals, and a long input cannot be printed in full.
So the shrunk input of every refuted claim (and the worst input seen, where the account shows
it) is written to an ``.npz`` file in ``INPUTS_DIR``, relative to the directory the run started
in, and ``Counterexample.saved`` names it. The account then prints a line that loads a long
array from the file, and ``softmax-oracle replay FILE`` checks the claim again on exactly that
input, in a worker process.

The file (format 1) holds one entry per array argument in its own dtype, except dtypes that the
``.npy`` format cannot name (ml_dtypes' bfloat16 reads back as raw bytes): those are stored as
their bits, an unsigned integer view, and read back with ``.view(ml_dtypes.bfloat16)``. The
entry ``__meta__`` is a string holding JSON: the claim, target, dtype, level and seed of the run,
the directory it ran in, each array's dtype, the other arguments (numbers, lists), the regimes,
the problem and the command that reproduces the search. Files are named by the claim, the dtype,
a digest of (target, level) and a digest of the input; at most ``KEEP`` files are kept for each
claim, target, dtype and level, the newest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softmax_oracle.engine.results import Counterexample
from softmax_oracle.oracle.dtypes import DTYPES, get_dtype

__all__ = ["INPUTS_DIR", "KEEP", "ReplayError", "Saved", "load_expression", "load_saved",
           "save_example", "with_saved"]

#: Where the inputs are written, relative to the directory the run started in (beside the
#: example database, ``.hypothesis/softmax-oracle``).
INPUTS_DIR = os.path.join(".hypothesis", "softmax-oracle-inputs")
#: Files kept for each claim, target, dtype and level; older ones are removed.
KEEP = 8
FORMAT = 1
_META = "__meta__"


class ReplayError(ValueError):
    """A file that is not a saved input of this kit, or cannot be read."""


@dataclass(frozen=True)
class Saved:
    """A saved input and what it was saved with."""

    path: str
    example: dict[str, Any]
    claim_id: str
    target: str
    dtype: str
    level: str
    seed: int | None
    cwd: str
    problem: str
    reproduce: str


def _ml_dtype(dtype: np.dtype[Any]) -> bool:
    """One of ml_dtypes' dtypes (bfloat16), which the .npy format reads back as raw bytes."""
    return dtype.type.__module__.split(".")[0] == "ml_dtypes"


def _native(dtype: np.dtype[Any]) -> bool:
    """Does the .npy format read this dtype back as itself?"""
    return dtype.kind in "biuf" and not _ml_dtype(dtype)


def save_example(ex: dict[str, Any], *, claim_id: str, target: str, dtype: str, level: str,
                 seed: int | None, problem: str = "", reproduce: str = "",
                 root: str | os.PathLike[str] = ".") -> str:
    """Write ``ex`` to a file in ``root/INPUTS_DIR``; its path relative to ``root``, or "" when
    the input cannot be stored (an object array), ``root`` is not a directory here (a job run
    on another machine), or the file cannot be written."""
    if not os.path.isdir(root):
        return ""
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    values: dict[str, Any] = {}
    tuples: list[str] = []
    for k, v in ex.items():
        if k == "regime":
            continue
        if isinstance(v, (np.ndarray, np.generic)):
            a = np.asarray(v)
            if a.dtype.kind not in "biuf" and not _ml_dtype(a.dtype):
                return ""
            kinds[k] = a.dtype.name
            arrays[k] = a if _native(a.dtype) else a.view(f"u{a.dtype.itemsize}")
        elif isinstance(v, (bool, int, float, str, list, tuple)) or v is None:
            values[k] = list(v) if isinstance(v, tuple) else v
            if isinstance(v, tuple):
                tuples.append(k)
        else:
            return ""
    key = hashlib.sha256(f"{target}\0{level}".encode()).hexdigest()[:8]
    try:
        digest = hashlib.sha256(json.dumps([claim_id, target, dtype, level, kinds, values],
                                           sort_keys=True).encode())
    except (TypeError, ValueError):  # a list holding something other than numbers
        return ""
    for k in sorted(arrays):
        digest.update(f"{k}{arrays[k].shape}".encode())
        digest.update(np.ascontiguousarray(arrays[k]).tobytes())
    stem = f"{claim_id}-{dtype}-{key}"
    rel = os.path.join(INPUTS_DIR, f"{stem}-{digest.hexdigest()[:10]}.npz")
    meta = {"format": FORMAT, "claim": claim_id, "target": target, "dtype": dtype,
            "level": level, "seed": seed, "cwd": os.path.abspath(root), "arrays": kinds,
            "values": values, "tuples": tuples, "regime": list(ex.get("regime", ())),
            "problem": problem, "reproduce": reproduce}
    path = os.path.join(root, rel)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            entries: dict[str, Any] = {**arrays, _META: np.array(json.dumps(meta))}
            np.savez(f, **entries)
        os.replace(tmp, path)
    except (OSError, ValueError, TypeError):
        with contextlib.suppress(OSError):
            os.remove(tmp)
        return ""
    _prune(Path(path).parent, stem, Path(path))
    return rel


def _prune(directory: Path, stem: str, newest: Path) -> None:
    """Keep the KEEP newest files of one claim, target, dtype and level."""
    with contextlib.suppress(OSError):
        now = time.time()
        os.utime(newest, (now, now))
        files = sorted(directory.glob(f"{stem}-*.npz"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        for old in files[KEEP:]:
            if old != newest:
                old.unlink()


def with_saved(cex: Counterexample, ex: dict[str, Any] | None, **meta: Any) -> Counterexample:
    """``cex`` with its input saved (``save_example``) and the file named in ``saved``."""
    if ex is None:
        return cex
    path = save_example(ex, problem=cex.problem, **meta)
    return dataclasses.replace(cex, saved=path) if path else cex


def load_saved(path: str) -> Saved:
    """Read a file written by ``save_example``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ReplayError(f"no such file: {path}") from None
    except (OSError, ValueError) as e:
        raise ReplayError(f"{path} is not a saved input ({type(e).__name__}: {e})") from None
    if _META not in entries:
        raise ReplayError(f"{path} is not a saved input of softmax-oracle (no {_META} entry)")
    try:
        meta = json.loads(str(entries.pop(_META)))
        fmt = meta["format"]
    except (ValueError, KeyError, TypeError):
        raise ReplayError(f"{path}: its {_META} entry is not what softmax-oracle writes") \
            from None
    if fmt != FORMAT:
        raise ReplayError(f"{path} was written in format {fmt!r} by another version of "
                          f"softmax-oracle; this one reads format {FORMAT}")
    ex: dict[str, Any] = {}
    for k, name in meta["arrays"].items():
        try:
            dt = get_dtype(name).np if name in DTYPES else np.dtype(name)
        except TypeError:
            raise ReplayError(f"{path}: argument {k!r} has dtype {name!r}, which numpy does "
                              f"not know") from None
        a = entries[k]
        ex[k] = a if a.dtype == dt else a.view(dt)
    for k, v in meta["values"].items():
        ex[k] = tuple(v) if k in meta.get("tuples", ()) else v
    ex["regime"] = tuple(meta.get("regime", ()))
    return Saved(path=path, example=ex, claim_id=meta["claim"], target=meta["target"],
                 dtype=meta["dtype"], level=meta["level"], seed=meta.get("seed"),
                 cwd=meta.get("cwd", ""), problem=meta.get("problem", ""),
                 reproduce=meta.get("reproduce", ""))


def load_expression(path: str, name: str, literal: str) -> str:
    """A Python expression that loads argument ``name`` from a saved file, given the literal
    ``format_value`` wrote for it (which names its dtype)."""
    expr = f"np.load({path!r})[{name!r}]"
    _, sep, dtype = literal.rpartition(", dtype=")
    dtype = dtype.rstrip(")")
    if sep and dtype.startswith("ml_dtypes."):
        expr += f".view({dtype})"
    return expr
