"""The jax target keeps a bounded number of compiled functions, and evicting them changes no
result: what is judged is still JAX's own output, compiled again to the same executable."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from softmax_oracle.oracle.dtypes import DTYPES, DType

if importlib.util.find_spec("jax") is None and not os.environ.get("CI"):
    pytest.skip("jax is not installed", allow_module_level=True)

import jax

from softmax_oracle.targets import fw_jax

pytestmark = pytest.mark.framework

#: The event JAX records once per XLA compilation.
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def compilations() -> Iterator[list[str]]:
    """The XLA compilations made while the test runs (one entry each)."""
    seen: list[str] = []

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        if event == COMPILE_EVENT:
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_compiled_functions_are_evicted_past_the_limit(
        monkeypatch: pytest.MonkeyPatch, compilations: list[str]) -> None:
    monkeypatch.setattr(fw_jax, "COMPILED_LIMIT", 2)
    jax.clear_caches()
    fw_jax._compiled.clear()
    a, b, c = (np.zeros((1, k), np.float32) for k in (3, 4, 5))
    for z in (a, b, a, b):  # two signatures: compiled once each, then reused
        fw_jax.softmax(z)
    assert len(compilations) == 2
    fw_jax.softmax(c)  # a third: every compiled function is dropped first
    fw_jax.softmax(a)  # so this one is compiled again
    assert len(compilations) == 4
    assert len(fw_jax._compiled) == 2


def _inputs(dtype: DType) -> dict[str, tuple[np.ndarray, ...]]:
    """Arguments of every protocol function, with the values where results are fragile: huge
    and tiny logits, -inf, ties, subnormals."""
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((3, 37)) * 20).astype(dtype.np)
    z[0, :5] = [dtype.rmax, -np.inf, dtype.rmin / 2, 0.0, dtype.rmax]
    z[1, 3:9] = -np.inf
    n = rng.random((3, 37)).astype(dtype.np)
    v = rng.standard_normal((3, 37)).astype(dtype.np)
    W = rng.standard_normal((5, 4)).astype(dtype.np)
    b = rng.standard_normal(5).astype(dtype.np)
    x = rng.standard_normal((3, 4)).astype(dtype.np)
    labels = rng.random((3, 5)).astype(dtype.np)
    return {"softmax": (z,), "log_softmax": (z,), "logsumexp": (z,), "softmax_vjp": (z, v),
            "cross_entropy": (z, n), "cross_entropy_grad": (z, n),
            "dense_grads": (W, b, x, labels), "exp": (z,)}


def _outputs(dtype: DType) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for name, args in _inputs(dtype).items():
        kwargs = {"axis": 0} if name not in ("dense_grads", "exp") else {}
        got = getattr(fw_jax, name)(*args, **kwargs)
        out += list(got) if isinstance(got, tuple) else [got]
    return out


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=str)
def test_eviction_changes_no_result(monkeypatch: pytest.MonkeyPatch, dtype: DType,
                                    compilations: list[str]) -> None:
    """The same calls before and after every compiled function was evicted give the same bits
    (and the second time they were really compiled again)."""
    monkeypatch.setattr(fw_jax, "COMPILED_LIMIT", 1)  # every new signature evicts
    before = _outputs(dtype)
    compiled = len(compilations)
    after = _outputs(dtype)
    assert compiled > 0 and len(compilations) - compiled == len(_inputs(dtype))
    for first, second in zip(before, after, strict=True):
        assert first.dtype == second.dtype and first.shape == second.shape
        assert first.tobytes() == second.tobytes()


# --- the kit's workers and JAX's persistent compilation cache ---------------------------------


def test_workers_get_a_bounded_compile_cache_unless_told_otherwise(tmp_path):
    from softmax_oracle.engine.supervisor import COMPILE_CACHE_BYTES, compile_cache_env

    env = compile_cache_env({"SOFTMAX_ORACLE_COMPILE_CACHE": str(tmp_path)})
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path)
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    assert env["JAX_COMPILATION_CACHE_MAX_SIZE"] == str(COMPILE_CACHE_BYTES)
    assert "JAX_COMPILATION_CACHE_DIR" not in compile_cache_env(
        {"SOFTMAX_ORACLE_COMPILE_CACHE": "0"})
    mine = {"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}
    assert compile_cache_env(dict(mine)) == mine  # the user's own configuration is kept
    default = compile_cache_env({})["JAX_COMPILATION_CACHE_DIR"]
    assert default == os.path.abspath(os.path.join(".hypothesis", "softmax-oracle-jax"))


def test_a_rerun_loads_the_same_programs_and_judges_the_same_bits(tmp_path, monkeypatch):
    """The first run fills the cache, the second loads from it; both, and a run without the
    cache, find the same worst error of every claim (the same outputs on the same inputs)."""
    from softmax_oracle import check

    def run(setting: str) -> list[tuple[str, str, float, float]]:
        monkeypatch.setenv("SOFTMAX_ORACLE_COMPILE_CACHE", setting)
        report = check("jax", dtypes=["float32"], claims="softmax.matches_reference,"
                       "log_softmax.matches_reference", profile="ci", seed=1, max_examples=15)
        return [(r.claim_id, r.verdict, r.max_ratio, r.max_ulps) for r in report.results]

    cache = tmp_path / "cache"
    uncached = run("0")
    assert not cache.exists()
    filled = run(str(cache))
    entries = len(list(cache.glob("*-cache")))
    assert entries > 0
    assert run(str(cache)) == filled == uncached
    assert len(list(cache.glob("*-cache"))) == entries  # nothing compiled anew
