"""Shared fixtures: the kit's tests run deterministically (fixed seeds, no example database)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("kit", deadline=None, database=None, derandomize=True)
settings.load_profile("kit")

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Each test runs in its own directory, so example databases and reports never collide."""
    monkeypatch.chdir(tmp_path)
    yield
