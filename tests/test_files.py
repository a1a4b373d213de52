"""Output files: paths checked before a run, files written whole or not at all."""

from __future__ import annotations

import pytest

from softmax_oracle.report.files import (
    OutputPathError,
    check_writable_dir,
    check_writable_file,
    write_atomic,
)


def test_write_atomic_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    write_atomic(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_old_file_whole(tmp_path):
    """Writing in place (open(path, "w")) empties the file first: a failure then loses it."""
    path = tmp_path / "report.md"
    path.write_text("the previous report")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half a report, then an unencodable \ud800")
    assert path.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_directory_to_be_created_is_checked_but_not_created(tmp_path):
    check_writable_dir(tmp_path / "new" / "report", "--out")
    check_writable_dir(tmp_path, "--out")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone too


def test_paths_that_cannot_be_written_name_the_option_the_path_and_the_fix(tmp_path):
    (tmp_path / "file").write_text("")
    cases = [
        (check_writable_dir, tmp_path / "file", "is a file, not a directory; give a directory"),
        (check_writable_dir, tmp_path / "file" / "sub", f"{tmp_path / 'file'} is a file"),
        (check_writable_file, tmp_path, "is a directory; give a file name"),
        (check_writable_file, tmp_path / "missing" / "r.json", "does not exist; create it"),
    ]
    for check, path, fix in cases:
        with pytest.raises(OutputPathError) as info:
            check(path, "--opt")
        assert str(info.value).startswith(f"--opt {path}: ") and fix in str(info.value)
