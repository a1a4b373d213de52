"""The loss API's semantics checked against the real frameworks, not their docstrings.

Each case is hand-picked so that the competing readings of an option give values far apart: the
framework's float64 output must lie within the kit's stable budget of the exact reference
(``oracle.loss``), and the alternative reading must not (so each test can fail). Also: the chunked
``F.linear_cross_entropy`` targets really take the chunked path, and what they do where the
unchunked path differs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from softmax_oracle.oracle.dtypes import get_dtype
from softmax_oracle.oracle.loss import (
    LossRef,
    LossSpec,
    fused_ref,
    fused_tols,
    grad_tol,
    loss_ref,
    loss_tol,
)
from softmax_oracle.oracle.tolerance import Model
from softmax_oracle.targets import Target, load_target

pytestmark = pytest.mark.framework

F64 = get_dtype("float64")
STABLE = Model.for_target(F64, "stable")
PREC = 200

Z = np.array([[1.0, 2.0, 0.5, -1.0],
              [0.0, -1.0, 3.0, 0.25],
              [2.0, 2.0, -2.0, 1.0],
              [-0.5, 4.0, 1.5, 0.0]])
W8 = np.array([0.5, 2.0, 4.0, 8.0])  # class weights, far from one another


def _torch() -> Target:
    pytest.importorskip("torch")
    return load_target("torch")


def _ref(z: np.ndarray, y: np.ndarray, options: dict[str, Any]) -> LossRef:
    return loss_ref(z, LossSpec.of(y, options), PREC)


def _within(out: Any, exact: list[Any], tols: list[Any], what: str) -> None:
    out = np.asarray(out, dtype=np.float64).reshape(-1)
    assert out.size == len(exact), what
    for k, (o, e, t) in enumerate(zip(out, exact, tols)):
        assert abs(o - e) <= t, f"{what}[{k}] = {o!r}, exact {float(e)!r}, budget {float(t)!r}"


def _agrees(t: Target, z: np.ndarray, y: np.ndarray, **options: Any) -> LossRef:
    """torch's loss and gradient lie within the stable budget of the exact reference."""
    ref = _ref(z, y, options)
    assert ref.defined
    loss = t.functions["cross_entropy_loss"](z, y, **options)
    _within(loss, ref.loss(), loss_tol(STABLE, ref), f"loss {options}")
    grad = t.functions["cross_entropy_loss_grad"](z, y, **options)
    for i in range(z.shape[0]):
        _within(grad[i], ref.grad(i), grad_tol(STABLE, ref, i), f"grad row {i} {options}")
    return ref


def _far(value: float, ref: LossRef, what: str) -> None:
    """An alternative reading gives a value outside the budget (the test can fail)."""
    exact, tol = float(ref.loss()[0]), float(loss_tol(STABLE, ref)[0])
    assert abs(value - exact) > 1e6 * tol, f"{what}: {value!r} is not told apart from {exact!r}"


def _lsm(z: np.ndarray) -> np.ndarray:
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


# --- F.cross_entropy ---------------------------------------------------------------------------


def test_mean_divides_by_the_weights_of_the_rows_kept():
    t = _torch()
    y = np.array([1, -100, 3, 2])
    ref = _agrees(t, Z, y, weight=W8, reduction="mean")
    assert float(ref.D) == 2.0 + 8.0 + 4.0
    total = float(_ref(Z, y, {"weight": W8, "reduction": "sum"}).loss()[0])
    _far(total / 3, ref, "the sum over the number of rows kept")
    _far(total / 4, ref, "the sum over the batch")


def test_smoothing_with_weights_spreads_the_weights_not_ones():
    t = _torch()
    y = np.array([1, 0, 3, 2])
    for reduction in ("none", "sum", "mean"):
        ref = _agrees(t, Z, y, weight=W8, label_smoothing=0.3, reduction=reduction)
    # mean: D is still the sum of w_y, not of the smoothed targets' weights
    assert float(ref.D) == 2.0 + 0.5 + 8.0 + 4.0
    l = _lsm(Z)
    unweighted_uniform = -sum(0.7 * W8[y[i]] * l[i, y[i]] + 0.3 / 4 * l[i].sum()
                              for i in range(4)) / float(ref.D)
    _far(unweighted_uniform, ref, "the uniform part without the weights")


def test_smoothing_skips_ignored_rows_entirely():
    t = _torch()
    y = np.array([1, -100, 3, -100])
    for reduction in ("none", "sum", "mean"):
        ref = _agrees(t, Z, y, label_smoothing=0.5, reduction=reduction)
    none = t.functions["cross_entropy_loss"](Z, y, label_smoothing=0.5, reduction="none")
    assert none[1] == 0 and none[3] == 0
    l = _lsm(Z)
    with_uniform = float(ref.loss()[0]) - (0.5 / 4) * (l[1].sum() + l[3].sum()) / 2
    _far(with_uniform, ref, "the ignored rows' uniform part kept")


def test_probability_targets_mean_divides_by_the_batch_even_with_weights():
    t = _torch()
    q = np.array([[0.25, 0.75, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5],
                  [0.125, 0.125, 0.25, 0.5]])
    for smoothing in (0.0, 0.2):
        ref = _agrees(t, Z, q, weight=W8, label_smoothing=smoothing, reduction="mean")
        assert float(ref.D) == 4.0
    total = float(_ref(Z, q, {"weight": W8, "label_smoothing": 0.2, "reduction": "sum"}).loss()[0])
    _far(total / float(np.sum(W8 * q)), ref, "the sum over the targets' total weight")


def test_ignore_index_in_range_ignores_that_class():
    t = _torch()
    y = np.array([1, 2, 3, 2])
    for options in ({"reduction": "mean"}, {"weight": W8, "reduction": "mean"},
                    {"label_smoothing": 0.1, "reduction": "none"}):
        ref = _agrees(t, Z, y, ignore_index=2, **options)
        assert list(ref.spec.ignored()) == [False, True, False, True]
    total = float(_ref(Z, y, {"reduction": "sum"}).loss()[0])
    ref = _ref(Z, y, {"ignore_index": 2, "reduction": "sum"})
    _far(total, ref, "class 2 counted")


def test_every_row_ignored_gives_a_nan_mean_and_a_zero_gradient():
    t = _torch()
    y = np.array([-100, -100, -100, -100])
    mean = t.functions["cross_entropy_loss"](Z, y, ignore_index=-100, reduction="mean")
    assert np.isnan(mean)
    grad = t.functions["cross_entropy_loss_grad"](Z, y, ignore_index=-100, reduction="mean")
    assert np.array_equal(grad, np.zeros_like(Z))
    assert not _ref(Z, y, {"reduction": "mean"}).defined
    for reduction in ("sum", "none"):
        _agrees(t, Z, y, reduction=reduction)
    empty = np.zeros((0, 4))
    assert np.isnan(t.functions["cross_entropy_loss"](empty, np.zeros(0, np.int64)))


def test_float16_label_smoothing_overflows_where_the_loss_is_small():
    """A finding (docs/frameworks.md, "The loss API"): F.cross_entropy forms the smoothing term as
    (ε/K) Σ_j w_j log p_j, the sum before the scaling, so in float16 a row of K = 8192 classes
    (Σ_j |log p_j| about 7.5e4 > 65504) gives inf where the loss is 9.41."""
    t = _torch()
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, 8192)).astype(np.float16)
    y = np.array([3])
    ref = _ref(z.astype(np.float64), y, {"label_smoothing": 0.1, "reduction": "none"})
    assert 9 < float(ref.loss()[0]) < 10
    assert np.isinf(t.functions["cross_entropy_loss"](z, y, label_smoothing=0.1, reduction="none"))
    plain = t.functions["cross_entropy_loss"](z, y, reduction="none")  # no smoothing: finite
    assert np.isfinite(plain).all()


# --- F.linear_cross_entropy: the reference path and the chunked ones ---------------------------

X = np.array([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0], [-1.5, 0.75, 1.0], [0.0, 1.0, 2.0]])
WL = np.array([[0.5, 1.0, -0.25], [-1.0, 0.5, 0.75], [2.0, -0.5, 0.0], [0.25, 0.25, 1.5]])
BL = np.array([0.1, -0.2, 0.3, 0.0])
CHUNKED = ("torch-lce-auto", "torch-lce-accurate", "torch-lce-balanced", "torch-lce-compact")


def _fused_agrees(t: Target, y: np.ndarray, **options: Any) -> None:
    f = fused_ref(X, WL, BL, LossSpec.of(y, options), PREC)
    outs = t.functions["linear_cross_entropy"](X, WL, BL, y, **options)
    tols = fused_tols(STABLE, f)
    exact = (f.loss.loss(), f.dx, f.dW, f.db)
    for name, out, e, tol in zip(("loss", "dx", "dW", "db"), outs, exact, tols):
        flat_e = [v for row in e for v in row] if name in ("dx", "dW") else list(e)
        flat_t = [v for row in tol for v in row] if name in ("dx", "dW") else list(tol)
        _within(out, flat_e, flat_t, f"{t.name} {name} {options}")


@pytest.mark.parametrize("name", ("torch", *CHUNKED))
def test_fused_semantics(name: str) -> None:
    pytest.importorskip("torch")
    t = load_target(name)
    y = np.array([1, -100, 3, 2])
    for reduction in ("none", "sum", "mean"):
        _fused_agrees(t, y, weight=W8, ignore_index=-100, reduction=reduction)
        _fused_agrees(t, np.array([1, 2, 3, 2]), ignore_index=2, reduction=reduction)
    if name == "torch":
        q = np.full((4, 4), 0.25)
        _fused_agrees(t, q, weight=W8, label_smoothing=0.2, reduction="mean")


@pytest.mark.parametrize("name", ("torch", *CHUNKED))
def test_fused_with_every_row_ignored(name: str) -> None:
    """The unchunked path: NaN loss, zero gradients (F.cross_entropy's convention). The chunked
    path (torch 2.13): NaN loss and NaN gradients, because it scales the gradient by
    1/D = 1/0 before multiplying by the rows' zero weights (``neg_weight_target.div_(nan)`` for
    D = 0). A finding: docs/frameworks.md, "The loss API"."""
    pytest.importorskip("torch")
    t = load_target(name)
    y = np.full(4, -100)
    loss, dx, dW, db = t.functions["linear_cross_entropy"](X, WL, BL, y, reduction="mean")
    assert np.isnan(loss)
    grads = np.concatenate([dx.ravel(), dW.ravel(), db.ravel()])
    if name == "torch":
        assert np.array_equal(grads, np.zeros_like(grads))
    else:
        assert np.all(np.isnan(grads))


@pytest.mark.parametrize("name", ("torch", "torch-lce-balanced"))
def test_the_kit_calls_the_chunked_all_ignored_mean_another_convention(name: str) -> None:
    """The verdict on that difference is the convention claim's: the reference path follows
    PyTorch's convention, the chunked one the other (NaN gradients), and neither is refuted."""
    pytest.importorskip("torch")
    import softmax_oracle

    report = softmax_oracle.check(name, dtypes=["float32"], profile="ci", seed=1,
                                  claims="linear_cross_entropy.mean_of_nothing")
    (res,) = report.results
    assert res.verdict == ("follows" if name == "torch" else "differs"), res
    assert report.ok


def test_chunked_targets_refuse_to_fall_back_to_the_reference_path():
    """Probability targets are outside the chunked path: PyTorch warns and runs the reference
    path; the target raises instead of judging the wrong path, and lets no warning out."""
    pytest.importorskip("torch")
    t = load_target("torch-lce-compact")
    q = np.full((4, 4), 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match=r"did not take the chunked path.*options.*ignored"):
            t.functions["linear_cross_entropy"](X, WL, BL, q)
        t.functions["linear_cross_entropy"](X, WL, BL, np.array([0, 1, 2, 3]))


def _bits(outs: Any) -> list[bytes]:
    return [np.ascontiguousarray(o).tobytes() for o in outs]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_which_chunked_targets_share_their_arithmetic(dtype: str) -> None:
    """What fw_torch_lce's docstring says: naming 'accurate' or 'balanced' runs the same code (in
    the input dtype); 'auto' is 'accurate' with float32 accumulation for 16-bit inputs and
    'compact' otherwise; with float32 accumulation in bfloat16 the three policies agree."""
    pytest.importorskip("torch")
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = get_dtype(dtype)
    rng = np.random.default_rng(0)
    x, W, b = (rng.normal(size=s).astype(dt.np) for s in ((16, 8), (64, 8), (64,)))
    y = rng.integers(0, 64, 16)

    def run(name: str) -> list[bytes]:
        return _bits(load_target(name).functions["linear_cross_entropy"](x, W, b, y))

    assert run("torch-lce-accurate") == run("torch-lce-balanced")
    if dt.t < 24:
        assert run("torch-lce-auto") != run("torch-lce-accurate")  # float32 vs input dtype
        if dtype == "bfloat16":
            assert run("torch-lce-auto") == run("torch-lce-balanced-fp32") \
                == run("torch-lce-compact-fp32")
        else:
            assert run("torch-lce-balanced-fp32") != run("torch-lce-compact-fp32")
    else:
        assert run("torch-lce-auto") == run("torch-lce-compact")


# --- optax --------------------------------------------------------------------------------------


def test_optax_ignore_index_is_where_and_only_none_is_declared():
    pytest.importorskip("optax")
    t = load_target("optax")
    assert t.loss.targets == ("index",) and t.loss.reductions == ("none",)
    y = np.array([1, -100, 3, -100])
    ref = _agrees(t, Z, y, ignore_index=-100, reduction="none")
    assert [float(v) for v in ref.loss()][1::2] == [0.0, 0.0]
    in_range = np.array([1, 2, 3, 2])
    _agrees(t, Z, in_range, ignore_index=2, reduction="none")
    with pytest.raises(ValueError, match="reduction='mean'"):
        t.functions["cross_entropy_loss"](Z, in_range, reduction="mean")
    # without ignore_index no `where` is passed: optax's own answer for a label out of range
    assert np.isnan(t.functions["cross_entropy_loss"](Z, y, reduction="none")[1])
