"""The probe for subnormals flushed to zero: what it measures, through which functions, and what
a report says of it."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from softmax_oracle.engine.check import flush_notes
from softmax_oracle.engine.jobs import TargetInfo
from softmax_oracle.engine.search import _probe_value, probe_flush
from softmax_oracle.oracle.dtypes import DTYPES, get_dtype
from softmax_oracle.targets import builtin_numpy, load_target

F64 = get_dtype("float64")


def _target(**functions):
    exp = functions.pop("exp", None)
    obj = types.SimpleNamespace(**functions)
    if exp is not None:
        obj.__softmax_oracle__ = {"exp": exp}
    return load_target(obj)


def _exp_in_float32(x):
    """exp computed in float32 and widened back: a narrower dtype, not a flush."""
    x = np.asarray(x)
    with np.errstate(under="ignore"):
        return np.exp(x.astype(np.float32)).astype(x.dtype)


def _softmax_in_float32(z, axis=-1):
    z = np.asarray(z)
    return builtin_numpy.softmax(z.astype(np.float32), axis).astype(z.dtype)


@pytest.mark.parametrize("name", DTYPES)
def test_the_probe_inputs_straddle_the_smallest_normal_number(name):
    """exp, softmax and the log-domain probes give about r_min / e below and e r_min above;
    cross-entropy and log-sum-exp r_min ln 2 / 2 and 4 r_min ln 2 (or 4 r_min)."""
    dt = get_dtype(name)
    careful = load_target("numpy")
    for fname in ("exp", "softmax", "cross_entropy", "logsumexp", "log_softmax"):
        below = _probe_value(careful, fname, dt, below=True)
        above = _probe_value(careful, fname, dt, below=False)
        assert 0 < below < dt.rmin <= above < 8 * dt.rmin, (fname, below, above)


def test_a_narrower_internal_dtype_is_not_reported_as_flushing():
    """An exp computed in float32 gives 0 for exp(ln r_min - 1) in float64, and the probe said
    "flushes subnormals": it also gives 0 just above r_min, which no flush does."""
    assert _exp_in_float32(np.array([math.log(F64.rmin) - 1.0]))[0] == 0
    assert not probe_flush(_target(softmax=builtin_numpy.softmax, exp=_exp_in_float32), F64)
    assert not probe_flush(_target(softmax=_softmax_in_float32), F64)


def _softmax_flushing(z, axis=-1):
    """The careful softmax with its subnormal results set to 0, as a flushing backend gives."""
    out = builtin_numpy.softmax(z, axis)
    return np.where(np.abs(out) < np.finfo(out.dtype).tiny, 0, out).astype(out.dtype)


def test_when_exp_tells_nothing_the_softmax_is_asked():
    assert probe_flush(_target(softmax=_softmax_flushing, exp=_exp_in_float32), F64)
    assert not probe_flush(_target(softmax=builtin_numpy.softmax, exp=_exp_in_float32), F64)
    assert probe_flush(_target(softmax=_softmax_flushing), F64)


@pytest.mark.parametrize("fname", ["log_softmax", "logsumexp", "cross_entropy"])
def test_targets_without_softmax_or_exp_are_probed(fname, monkeypatch):
    """Only exp and softmax were probed: a target with neither was never asked."""
    called = []
    fn = getattr(builtin_numpy, fname)

    def spy(*args, **kw):
        called.append(fname)
        return fn(*args, **kw)

    target = _target(**{fname: spy})
    for name in ("float64", "float32", "float16", "bfloat16"):
        assert not probe_flush(target, get_dtype(name))  # numpy keeps subnormals
    assert called


@pytest.mark.framework
@pytest.mark.parametrize("fname", ["softmax", "logsumexp", "cross_entropy"])
def test_a_flushing_backend_is_found_through_each_function(fname):
    """XLA on CPU flushes subnormals in float64, float32 and bfloat16, and keeps them in float16
    (docs/frameworks.md): the probe finds that through the functions of a target that has no
    exp (log_softmax computes without log1p there, so it tells nothing: the strict floor)."""
    pytest.importorskip("jax")
    jax_target = load_target("jax")
    target = _target(**{fname: jax_target.functions[fname]})
    got = {name: probe_flush(target, get_dtype(name))
           for name in ("float64", "float32", "float16", "bfloat16")}
    assert got == {"float64": True, "float32": True, "float16": False, "bfloat16": True}
    assert not probe_flush(_target(log_softmax=jax_target.functions["log_softmax"]),
                           get_dtype("float32"))


def test_the_note_says_what_was_observed():
    info = TargetInfo(name="backend", flushes={"float32": True, "float64": False})
    (note,) = flush_notes(info, [get_dtype("float64"), get_dtype("float32")])
    assert note == ("backend flushes subnormals to zero in float32: a result just below the "
                    "smallest normal number, 1.18e-38, came out as 0, one just above it did "
                    "not; the absolute floor is 1.18e-38")
