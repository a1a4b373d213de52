"""The example database of the kit's searches: the shrunk failures, replayed first by the next run,
and nothing else, so that it stays small.

Hypothesis keeps three corpora per test in its database: the primary one (the shrunk failures),
``<key>.secondary`` (each failing example a shrink step replaced) and ``<key>.pareto`` (the
Pareto front of the ``target()`` scores, which every search of the kit reports, failing or not).
It prunes the last two only now and then, and each run's fresh seed leaves a fresh Pareto front
behind, so the directory grew with every run, interrupted or not. Measured on six runs of
``softmax-oracle check naive --dtype float32,float64`` with seeds 1 to 6 (three of them stopped by
Ctrl-C after 8 s): 2,211 files after the first run, 3,558 (15 MB on disk: each small file takes a
disk block) after the sixth -- 68 shrunk failures, 517 replaced shrink steps, 2,747 Pareto
entries (120 to 410 more each run) and Hypothesis's list of the keys. With only the shrunk
failures kept, the same six runs leave 134 files (0.8 MB), the same number after each run; the
failures are replayed as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

__all__ = ["FailuresDatabase"]

#: The sub-corpora Hypothesis keeps besides the shrunk failures; not kept here.
DROPPED = (b".secondary", b".pareto")


class FailuresDatabase(ExampleDatabase):
    """A ``DirectoryBasedExampleDatabase`` at ``path`` that keeps only the shrunk failures.

    Saves to the dropped sub-corpora are ignored; reading one returns nothing and deletes what an
    earlier version of the kit left there."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._db = DirectoryBasedExampleDatabase(path)

    def __repr__(self) -> str:
        return f"FailuresDatabase({self._db.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FailuresDatabase) and self._db == other._db

    def __hash__(self) -> int:
        return hash(self._db.path)

    def save(self, key: bytes, value: bytes) -> None:
        if not key.endswith(DROPPED):
            self._db.save(key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        if not key.endswith(DROPPED):
            yield from self._db.fetch(key)
            return
        for value in list(self._db.fetch(key)):
            self._db.delete(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self._db.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if dest.endswith(DROPPED):
            self._db.delete(src, value)
        else:
            self._db.move(src, dest, value)

    def _start_listening(self) -> None:
        pass  # nothing listens: the kit runs no HypoFuzz

    def _stop_listening(self) -> None:
        pass
