"""The fast paths reach the verdicts of the exact ones: certified float references against mpmath,
the vectorised comparison against the mpmath one, vocabulary-sized rows, and parallel runs against
sequential ones."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softmax_oracle.engine.check import run_check
from softmax_oracle.engine.profiles import PROFILES
from softmax_oracle.engine.search import _inputs, _same_examples_in_every_process
from softmax_oracle.oracle.compare import RATIO_PRECISION, assess, concat, round_vec
from softmax_oracle.oracle.dtypes import DTYPES, get_dtype, round_to
from softmax_oracle.oracle.exact import mp_vector, rows_of
from softmax_oracle.oracle.intervals import (
    _F64,
    _LD,
    _calibrated,
    _to_mpf_exact,
    exact_only,
    working_format,
)
from softmax_oracle.oracle.reference import row_ref, row_refs
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.spec import strategies as S
from softmax_oracle.targets import builtin_naive, builtin_numpy
from softmax_oracle.zoo import ZOO

DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16")
FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "cross_entropy_grad", "cross_entropy")
IMPLEMENTATIONS = {"numpy": vars(builtin_numpy), "naive": vars(builtin_naive),
                   **{m.name: dict(m.functions) for m in ZOO}}


def _inside(ctx, cert, what):
    """Every exact (mpmath) element lies in its enclosure."""
    bounds = cert.bounds
    assert bounds is not None, what
    approx, err, low = bounds
    for j in range(len(cert)):
        exact = cert[j]
        mid = _to_mpf_exact(ctx, approx[j])
        if low is not None:
            mid += _to_mpf_exact(ctx, low[j])
        if ctx.isinf(exact) or ctx.isinf(mid):
            assert exact == mid and err[j] == 0, (what, j)
            continue
        radius = _to_mpf_exact(ctx, err[j]) if np.isfinite(err[j]) else ctx.inf
        assert abs(exact - mid) <= radius, (what, j, float(exact), float(mid), float(radius))


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_enclosures_hold_the_mpmath_values(name):
    """Reference values and budgets (both levels, with and without a flushing floor) on
    adversarial rows: masks, targets, every family."""
    dt = get_dtype(name)
    models = [Model.for_target(dt, level, flushes=flushes)
              for level in ("stable", "accurate") for flushes in (False, True)]

    @settings(max_examples=40)
    @given(S.logits_and_targets(dt, max_size=40))
    def check(ex):
        z, n, axis = ex["z"], ex["n"], ex["axis"]
        for r, nrow in zip(row_refs(z, axis, dt.prec), rows_of(n, axis)):
            ctx, ns = r.ctx, mp_vector(r.ctx, nrow)
            for what, cert in (("l", r.l), ("g", r.g), ("1 - g", r.one_minus_g),
                               ("y", r.logsumexp(certified=True)), ("grad", r.grad(ns))):
                _inside(ctx, cert, what)
            if r.cross_entropy(ns, certified=True).bounds is not None:
                _inside(ctx, r.cross_entropy(ns, certified=True), "C")
            for m in models:
                what = f"{m.level} {'flushing' if m.flushes else ''}"
                _inside(ctx, m.softmax(r), f"softmax tol {what}")
                _inside(ctx, m.log_softmax(r), f"log_softmax tol {what}")
                _inside(ctx, m.logsumexp(r, certified=True), f"logsumexp tol {what}")
                _inside(ctx, m.grad(r, ns), f"grad tol {what}")
                ce = m.cross_entropy(r, ns, certified=True)
                if ce.bounds is not None:
                    _inside(ctx, ce, f"cross_entropy tol {what}")

    check()


def _outputs(impl, z, n, axis):
    outs = {}
    with np.errstate(all="ignore"):
        for fname in FUNCTIONS:
            fn = IMPLEMENTATIONS[impl].get(fname)
            if fn is None:
                continue
            try:
                out = fn(z, n, axis=axis) if fname.startswith("cross") else fn(z, axis=axis)
                out = np.asarray(out).astype(np.float64)
            except Exception:
                continue
            reduced = fname in ("logsumexp", "cross_entropy")
            shape = tuple(s for i, s in enumerate(z.shape) if i != axis % z.ndim) if reduced \
                else z.shape
            if out.shape == shape:
                outs[fname] = out if reduced else rows_of(out, axis)
    return outs


def _assessments(dt, z, n, axis, outs):
    rows = row_refs(z, axis, dt.prec)
    ns = [mp_vector(rows[0].ctx, v) for v in rows_of(n, axis)]
    got = {}
    for level in ("stable", "accurate"):
        m = Model.for_target(dt, level)
        parts = {
            "softmax": lambda r, i, m=m: (r.g, m.softmax(r)),
            "log_softmax": lambda r, i, m=m: (r.l, m.log_softmax(r)),
            "logsumexp": lambda r, i, m=m: (r.logsumexp(certified=True),
                                            m.logsumexp(r, certified=True)),
            "cross_entropy_grad": lambda r, i, m=m: (r.grad(ns[i]), m.grad(r, ns[i])),
            "cross_entropy": lambda r, i, m=m: (r.cross_entropy(ns[i], certified=True),
                                                m.cross_entropy(r, ns[i], certified=True)),
        }
        for fname, out in outs.items():
            pairs = [parts[fname](r, i) for i, r in enumerate(rows)]
            got[level, fname] = assess(out.reshape(-1), concat(p[0] for p in pairs),
                                       concat(p[1] for p in pairs), dt, str, fname)
    return got


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_fast_comparison_decides_as_mpmath(name):
    """The careful, the naive and every zoo implementation: the same elements over budget as in
    mpmath, and the reported ratio within RATIO_PRECISION (1 + ratio) of mpmath's."""
    dt = get_dtype(name)
    seen = {"fast": 0, "refuted": 0}

    @settings(max_examples=60)
    @given(S.logits_and_targets(dt, max_size=24), st.sampled_from(sorted(IMPLEMENTATIONS)))
    def check(ex, impl):
        outs = _outputs(impl, ex["z"], ex["n"], ex["axis"])
        fast = _assessments(dt, ex["z"], ex["n"], ex["axis"], outs)
        with exact_only():
            slow = _assessments(dt, ex["z"], ex["n"], ex["axis"], outs)
        for key, a in fast.items():
            b = slow[key]
            seen["fast"] += 1
            seen["refuted"] += b.bad > 0
            assert (a.bad, a.total, a.problem is None) == (b.bad, b.total, b.problem is None), key
            if b.bad:
                assert a.ratio > 1, key
            else:
                assert abs(a.ratio - b.ratio) <= RATIO_PRECISION * (1 + b.ratio) * 1.01, key

    check()
    assert seen["fast"] > 100 and seen["refuted"] > 5  # both verdicts were exercised


def test_exact_path_is_the_old_mpmath_recipe(monkeypatch):
    """Values computed on demand equal, bit for bit, those of the all-mpmath oracle the fast
    references replaced (kept in benchmarks/bench_reference.py as the baseline)."""
    path = pathlib.Path(__file__).parent.parent / "benchmarks" / "bench_reference.py"
    spec = importlib.util.spec_from_file_location("bench_reference", path)
    old = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_reference", old)  # dataclasses look it up
    spec.loader.exec_module(old)
    rng = np.random.default_rng(7)
    for name in DTYPE_NAMES:
        dt = get_dtype(name)
        big = min(1e30, dt.rmax / 8)
        for row in (rng.normal(0, 5, 9), np.array([0.0, -40.0, -np.inf, 3.0, 3.0]),
                    np.array([big, big * 0.99, -big])):
            z = row.astype(dt.np).astype(np.float64)
            new, ref = row_ref(z, dt.prec), old._old_row_ref(z, dt.prec)
            assert new.L == ref.L and new.y == ref.y
            assert list(new.l) == ref.l and list(new.g) == ref.g
            assert list(new.one_minus_g) == ref.one_minus_g
            for level in ("stable", "accurate"):
                m, o = Model.for_target(dt, level), old._OldModel(dt, level, dt.rmin_sub)
                assert list(m.softmax(new)) == o.softmax(ref)
                assert list(m.log_softmax(new)) == o.log_softmax(ref)
                assert m.logsumexp(new) == o.logsumexp(ref)
                targets = np.abs(rng.normal(size=z.size)) * np.isfinite(z)
                ns = mp_vector(new.ctx, targets.astype(dt.np).astype(np.float64))
                assert list(m.grad(new, ns)) == o.grad(ref, list(ns))


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_round_vec_is_round_to(name):
    dt = get_dtype(name)
    rng = np.random.default_rng(1)
    spacing = np.ldexp(1.0, rng.integers(dt.emin - dt.t, dt.emax - dt.t + 1, 2000))
    ties = (rng.integers(0, 2**dt.t, 2000) + 0.5) * spacing  # exact midpoints, all ranges
    with np.errstate(over="ignore"):
        values = np.concatenate([
            ties, -ties, rng.normal(0, 1, 500), np.exp(rng.uniform(-800, 800, 1000)),
            [0.0, -0.0, dt.rmin_sub / 2, dt.rmin_sub * 1.5, dt.rmax, dt.rmax * (1 + 2.0**-dt.t)],
        ])
    values = values[np.isfinite(values)]
    got = round_vec(values, dt)
    want = np.array([round_to(float(v), dt) for v in values])
    assert np.array_equal(got, want)
    if _LD.np is not np.float64 and name == "float64":  # long double inputs, between doubles
        wide = values.astype(np.longdouble) * (1 + np.longdouble(2.0) ** -60)
        ctx = mpmath.MPContext()
        ctx.prec = 100
        want = np.array([round_to(_to_mpf_exact(ctx, v), dt) for v in wide])
        assert np.array_equal(round_vec(wide, dt).astype(np.float64), want)


def test_working_formats_are_calibrated():
    assert working_format(DTYPES["float32"].prec) is _F64 and _calibrated(_F64)
    if np.finfo(np.longdouble).nmant + 1 < 64:
        pytest.skip("long double has no 64-bit significand here: float64 uses mpmath only")
    assert working_format(DTYPES["float64"].prec) is _LD
    with exact_only():
        assert working_format(DTYPES["float64"].prec) is None
        assert row_ref(np.array([1.0, 2.0]), 112).g.bounds is None


# ================================================================================ vocabulary rows


def test_vocabulary_rows_are_drawn_only_when_asked():
    counts = {"vocab": 0, "sparse": 0}

    @settings(max_examples=300)
    @given(S.logits("float32", max_size=16, vocab_size=40000))
    def check(ex):
        n = ex["z"].shape[ex["axis"]]
        assert n <= 16 or S.VOCAB_MIN <= n <= 40000
        assert ex["z"].size <= 2 * 40000
        if n >= S.VOCAB_MIN:
            counts["vocab"] += 1
            assert "vocab" in ex["regime"]
            counts["sparse"] += "sparse" in ex["regime"]
        else:
            assert "vocab" not in ex["regime"]

    @settings(max_examples=100)
    @given(S.logits("float32", max_size=16))
    def plain(ex):
        assert ex["z"].shape[ex["axis"]] <= 16

    check()
    plain()
    assert counts["vocab"] >= 3 and counts["sparse"] >= 1
    with pytest.raises(ValueError, match="vocab_size"):
        S.logits("float32", vocab_size=1000)


def test_thorough_profile_asks_for_vocabulary_rows():
    assert PROFILES["thorough"].vocab_size == 262144
    assert all(p.vocab_size == 0 for n, p in PROFILES.items() if n != "thorough")
    assert _inputs(PROFILES["thorough"]).vocab_size == 262144
    assert _inputs(PROFILES["default"]).vocab_size == 0


def test_reference_claims_meet_vocabulary_rows_under_the_thorough_profile(monkeypatch):
    """The claims that compare with the oracle opt in to vocabulary-sized rows; the others (whose
    checks call a target many times per example) keep to short rows."""
    from softmax_oracle.spec.claims import get_claim

    asked: list[int] = []

    def spying(real):
        def spy(*args, **kw):
            asked.append(kw.get("vocab_size", 0))
            return real(*args, **kw)
        return spy

    for name in ("logits", "logits_and_targets"):
        monkeypatch.setattr(S, name, spying(getattr(S, name)))

    def vocab_sizes(claim_id):
        asked.clear()
        get_claim(claim_id).strategy(get_dtype("float32"), _inputs(PROFILES["thorough"]))
        return set(asked)

    for cid in ("softmax.matches_reference", "log_softmax.matches_reference",
                "logsumexp.matches_reference", "cross_entropy.matches_reference",
                "cross_entropy_grad.any_targets", "log_softmax.accurate", "logsumexp.accurate",
                "cross_entropy.accurate"):
        assert vocab_sizes(cid) == {262144}, cid
    for cid in ("softmax.deterministic", "softmax.axis_and_batch", "softmax.shift_invariant",
                "cross_entropy_grad.sums_to_zero"):
        assert vocab_sizes(cid) <= {0}, cid


@pytest.mark.parametrize(("name", "size"), [("float32", 262144), ("bfloat16", 131072),
                                            ("float64", 65536)])
def test_vocabulary_rows_are_checked_within_seconds(name, size):
    """A language-model-sized row: the careful target holds at both levels, a wrong one is
    refuted; the enclosures decide (no mpmath on 10^5 entries)."""
    dt = get_dtype(name)
    rng = np.random.default_rng(3)
    z = (rng.normal(0, 3, size) + np.where(rng.random(size) < 1e-4, 15, 0)).astype(dt.np)
    n = np.zeros(size)
    n[int(np.argmax(z))] = 1.0
    n = n.astype(dt.np)
    outs = _outputs("numpy", z, n, -1)
    got = _assessments(dt, z, n, -1, outs)
    assert all(a.bad == 0 for a in got.values()), {k: a.problem for k, a in got.items()}
    wrong = outs["softmax"] * 1.5  # unnormalised; (bfloat16 budgets are uninformative here)
    wrong[0, 7] = np.nan
    bad = _assessments(dt, z, n, -1, {"softmax": wrong})["stable", "softmax"].bad
    assert bad == (1 if name == "bfloat16" else size)


def test_rows_of_one_repeated_value_are_cheap_in_mpmath():
    """Without enclosures, a vocabulary-sized row of one value but a few costs a few mpmath
    evaluations (one per distinct value), and gives the closed form of ties."""
    size = 100000
    z = np.full(size, -2.5)
    z[[3, 77, 5000]] = [4.0, 1.0, -30.0]
    with exact_only():
        r = row_ref(z, DTYPES["float64"].prec)
        ctx = r.ctx
        s = ctx.exp(ctx.mpf(-3.0)) + ctx.exp(ctx.mpf(-34.0)) + (size - 3) * ctx.exp(ctx.mpf(-6.5))
        assert abs(r.L - ctx.log1p(s)) <= ctx.log1p(s) * 2.0**-150
        assert abs(r.g[10] - ctx.exp(ctx.mpf(-6.5) - r.L)) <= r.g[10] * 2.0**-150


# ================================================================================ parallel runs


def _without_times(report):
    return [dataclasses.replace(r, seconds=0.0) for r in report.results]


def test_parallel_run_equals_sequential(tmp_path, monkeypatch):
    kw = dict(dtypes=("float64", "float32"), profile="quick", seed=11,
              claims="softmax.sums_to_one,logsumexp.*,cross_entropy_grad.any_targets")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    sequential = run_check("numpy", **kw)
    monkeypatch.chdir(tmp_path / "b")
    calls = []
    parallel = run_check("numpy", **kw, jobs=2,
                         on_result=lambda r, done, total: calls.append((r.claim_id, done, total)))
    # Same claims, dtypes, seeds and verdicts, in the same order. The examples themselves can
    # differ: Hypothesis mixes constants collected from the modules loaded in each process into
    # generation, and the worker processes load fewer modules than this test process.
    for seq, par in zip(_without_times(sequential), _without_times(parallel), strict=True):
        assert (seq.claim_id, seq.dtype, seq.seed, seq.verdict) == (
            par.claim_id, par.dtype, par.seed, par.verdict)
    assert [d for _, d, _ in calls] == list(range(1, len(sequential.results) + 1))
    assert parallel.notes == sequential.notes and parallel.seed == sequential.seed


def test_searches_ignore_constants_of_imported_modules(tmp_path, monkeypatch):
    """Hypothesis draws literal constants from the source of imported local modules, so a seed
    gave different examples in processes that had imported different modules (a parallel worker,
    the CLI, the pytest plugin). The kit's searches draw none of them."""
    magic = set(range(987654000, 987654200))  # many, so that they are drawn whatever else is
    (tmp_path / "lookalike_constants.py").write_text(f"MAGIC = {sorted(magic)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("lookalike_constants")

    def draws():
        seen = []

        @settings(max_examples=2500, derandomize=True)
        @given(st.integers(0, 2**32 - 1))
        def draw(v):
            seen.append(v)

        draw()
        return seen

    assert magic & set(draws())  # what Hypothesis does by itself
    with _same_examples_in_every_process():
        assert not magic & set(draws())


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match="jobs"):
        run_check("numpy", claims="softmax.sums_to_one", jobs=0)


def test_unpicklable_target_runs_in_this_process_and_says_so():
    """A target object that cannot be pickled cannot reach a worker process: it runs here,
    unsupervised, and the report's notes say so."""
    import types

    target = types.SimpleNamespace(softmax=lambda z, axis=-1: builtin_numpy.softmax(z, axis))
    for jobs in (1, 2):
        report = run_check(target, claims="softmax.sums_to_one", max_examples=5, jobs=jobs)
        assert math.isfinite(report.results[0].max_ratio)
        assert any("does not pickle" in n for n in report.notes)


@pytest.mark.parametrize("claim_id", [
    "softmax.matches_reference", "log_softmax.matches_reference", "log_softmax.accurate",
    "logsumexp.matches_reference", "cross_entropy.accurate", "cross_entropy_grad.any_targets"])
def test_the_claims_checks_use_the_enclosures(claim_id, monkeypatch):
    """The claims hand the comparison lazy references, so that on a long row mpmath evaluates
    only the few elements the enclosures cannot decide (not every element). (softmax_vjp has no
    enclosures yet: its rows stay short.)"""
    from softmax_oracle.engine.search import make_env
    from softmax_oracle.oracle import reference as _reference
    from softmax_oracle.spec.claims import get_claim
    from softmax_oracle.targets import load_target

    evaluated = [0]
    real = _reference.Certified.__getitem__

    def counting(self, i):
        evaluated[0] += 1
        return real(self, i)

    monkeypatch.setattr(_reference.Certified, "__getitem__", counting)
    dt = get_dtype("float32")
    rng = np.random.default_rng(5)
    size = 20000
    z = rng.normal(0.0, 3.0, size).astype(dt.np)[None]
    n = np.zeros_like(z)
    n[0, int(np.argmax(z))] = 1
    ex = {"z": z, "axis": -1, "n": n, "v": rng.normal(0.0, 1.0, size).astype(dt.np)[None]}
    env, _ = make_env(load_target("numpy"), dt)
    assert get_claim(claim_id).check(env, ex) <= 1
    assert evaluated[0] < size / 20, evaluated[0]
