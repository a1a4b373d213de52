"""The example database keeps the shrunk failures, which the next run replays, and nothing that
makes it grow from run to run."""

from __future__ import annotations

from pathlib import Path

from hypothesis.database import DirectoryBasedExampleDatabase

from softmax_oracle.cli import main
from softmax_oracle.engine.database import FailuresDatabase
from softmax_oracle.engine.search import DATABASE_DIR


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_only_the_primary_corpus_is_kept(tmp_path):
    db = FailuresDatabase(tmp_path)
    db.save(b"k", b"failure")
    db.save(b"k.pareto", b"front")
    db.save(b"k", b"bigger failure")
    db.move(b"k", b"k.secondary", b"bigger failure")  # what a shrink step does
    assert set(db.fetch(b"k")) == {b"failure"}
    assert list(db.fetch(b"k.pareto")) == [] and list(db.fetch(b"k.secondary")) == []
    plain = DirectoryBasedExampleDatabase(tmp_path)
    assert list(plain.fetch(b"k.pareto")) == [] and list(plain.fetch(b"k.secondary")) == []


def test_reading_a_dropped_corpus_clears_what_older_versions_left(tmp_path):
    plain = DirectoryBasedExampleDatabase(tmp_path)
    for i in range(5):
        plain.save(b"k.pareto", b"old %d" % i)
    db = FailuresDatabase(tmp_path)
    assert list(db.fetch(b"k.pareto")) == []
    assert list(plain.fetch(b"k.pareto")) == []


def test_runs_with_new_seeds_do_not_grow_the_database_and_still_replay(tmp_path, monkeypatch,
                                                                        capsys):
    """With Hypothesis's plain directory database every run left its Pareto front of target()
    scores and its replaced shrink steps behind (37 MB after a few runs of a whole check)."""
    (tmp_path / "bad.py").write_text(
        "import numpy as np\n"
        "def softmax(z, axis=-1):\n"
        "    e = np.exp(z)\n"
        "    return e / np.sum(e, axis=axis, keepdims=True)\n")
    monkeypatch.chdir(tmp_path)
    args = ["check", "bad.py", "--dtype", "float32", "--claim", "softmax.finite_for_huge_logits",
            "-q"]
    sizes = []
    for seed in ("1", "2", "3"):
        assert main([*args, "--seed", seed]) == 1
        sizes.append(len(_files(tmp_path / DATABASE_DIR)))
    capsys.readouterr()
    # one key (this claim, target and dtype) and Hypothesis's list of keys: one directory each
    assert len([p for p in (tmp_path / DATABASE_DIR).iterdir() if p.is_dir()]) == 2
    assert sizes[0] == sizes[1] == sizes[2] <= 4
