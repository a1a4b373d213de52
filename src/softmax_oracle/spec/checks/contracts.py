"""The checks of the plug-in contract: returns on valid inputs, inputs left unchanged, shape and
dtype, axes and batches, determinism."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from softmax_oracle.oracle.compare import Refuted, assess
from softmax_oracle.oracle.exact import MPF, context, rows_of
from softmax_oracle.oracle.reference import RowRef
from softmax_oracle.spec.checks.common import Check, Example, labeler, mp_rows
from softmax_oracle.targets.call import Env, TargetRaised

_LOSS_API = ("cross_entropy_loss", "cross_entropy_loss_grad", "linear_cross_entropy")
#: Functions returning a tuple of arrays.
_TUPLES = ("dense_grads", "linear_cross_entropy")


def _call_for(fname: str, env: Env, ex: Example, z: np.ndarray | None = None) -> Any:
    if fname == "dense_grads":
        return env.call_raw(fname, ex["W"], ex["b"], ex["x"], ex["n"])
    if fname == "linear_cross_entropy":
        return env.call_raw(fname, ex["x"], ex["W"], ex["b"], ex["y"], **ex["options"])
    if fname in _LOSS_API:
        return env.call_raw(fname, ex["z"], ex["y"], **ex["options"])
    z = ex["z"] if z is None else z
    axis = ex.get("axis", -1)
    if fname in ("softmax", "log_softmax", "logsumexp"):
        return env.call_raw(fname, z, axis=axis)
    if fname == "softmax_vjp":
        return env.call_raw(fname, z, ex["v"], axis=axis)
    return env.call_raw(fname, z, ex["n"], axis=axis)


def contract_returns(fname: str) -> Check:
    """The one claim that judges an exception of ``fname`` on a valid input (the other claims
    skip such an input)."""

    def check(env: Env, ex: Example) -> float:
        try:
            _call_for(fname, env, ex)
        except TargetRaised as e:
            raise Refuted(e.problem) from None
        return 0.0
    return check


def contract_no_mutation(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        _call_for(fname, env, ex)  # Env.call_raw refutes on any change to an input
        return 0.0
    return check


def contract_shape_dtype(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        out = _call_for(fname, env, ex)
        from softmax_oracle.targets.call import _to_numpy

        outs = out if fname in _TUPLES else (out,)
        if fname == "dense_grads":
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Refuted(f"dense_grads returned {type(out).__name__}, expected (dW, db, dx)")
            shapes = [ex["W"].shape, ex["b"].shape, ex["x"].shape]
            dtype = ex["W"].dtype
        elif fname in _LOSS_API:
            first = ex["x" if fname == "linear_cross_entropy" else "z"]
            loss = (first.shape[0],) if ex["options"].get("reduction") == "none" else ()
            if fname == "linear_cross_entropy":
                shapes = [loss, ex["x"].shape, ex["W"].shape, ex["b"].shape]
            else:
                shapes = [loss] if fname == "cross_entropy_loss" else [ex["z"].shape]
            dtype = first.dtype
            if fname == "linear_cross_entropy" and (not isinstance(out, (tuple, list))
                                                    or len(out) != 4):
                raise Refuted(f"{fname} returned {type(out).__name__}, expected "
                              f"(loss, dx, dW, db)")
        else:
            z, axis = ex["z"], ex["axis"]
            shapes = [tuple(s for i, s in enumerate(z.shape) if i != axis % z.ndim)
                      if fname in ("logsumexp", "cross_entropy") else z.shape]
            dtype = z.dtype
        for i, (o, shape) in enumerate(zip(outs, shapes)):
            if o is None:  # not "shape ()": np.asarray(None) is a 0-d array of objects
                what = f"{fname}()[{i}]" if fname in _TUPLES else fname
                raise Refuted(f"{what} returned None, expected an array of shape "
                              f"{tuple(shape)} and dtype {dtype} (is a return statement "
                              f"missing?)")
            arr = np.asarray(_to_numpy(o))
            if arr.shape != tuple(shape):
                raise Refuted(f"{fname} returned shape {arr.shape}, expected {tuple(shape)}")
            if arr.dtype != dtype:
                raise Refuted(f"{fname} returned dtype {arr.dtype} for {dtype} input; the output "
                              f"must have the input's dtype")
        return 0.0
    return check


def _default_axis(env: Env, fname: str) -> int | None:
    """The default of the target's ``axis`` parameter, or None when it has none (the caller must
    pass it) or the signature cannot be read."""
    assert env.target is not None
    try:
        param = inspect.signature(env.target.functions[fname]).parameters.get("axis")
    except (TypeError, ValueError):
        return None
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default if isinstance(param.default, int) else None


def contract_axis(fname: str) -> Check:
    """Batched along any axis equals row by row (each 1-D row with axis=-1), within budgets; and
    where the target gives ``axis`` a default, the default is the protocol's -1."""

    def check(env: Env, ex: Example) -> float:
        z, axis = ex["z"], ex["axis"]
        extra = "v" if fname == "softmax_vjp" else ("n" if "n" in ex else None)
        args = (z,) if extra is None else (z, ex[extra])
        default = _default_axis(env, fname)
        if default is not None and default != -1 and default % z.ndim != z.ndim - 1:
            raise Refuted(f"{fname} defaults to axis={default}; the protocol's default is the "
                          f"last axis, axis=-1")
        batched = env.call(fname, *args, axis=axis)
        if default is not None and axis % z.ndim == z.ndim - 1:
            from softmax_oracle.targets.call import _as_float

            expected = batched.shape
            plain = _as_float(f"{fname}() without axis", env.call_raw(fname, *args), expected)
            same = (plain == batched) | (np.isnan(plain) & np.isnan(batched))
            if not np.all(same):
                raise Refuted(f"{fname}(z) without axis differs from {fname}(z, axis={axis}) in "
                              f"{int(np.sum(~same))} of {same.size} elements; its default "
                              f"axis={default} must mean the last axis")
        reduce = fname in ("logsumexp", "cross_entropy")
        zr = rows_of(z, axis)
        er = rows_of(ex[extra], axis) if extra else None
        rows = []
        for i in range(zr.shape[0]):
            row_args = (zr[i].astype(z.dtype),) if er is None else (
                zr[i].astype(z.dtype), er[i].astype(z.dtype))
            rows.append(env.call(fname, *row_args, axis=-1))
        rowwise = np.array(rows).reshape(-1)
        got = batched.reshape(-1) if reduce else rows_of(batched, axis).reshape(-1)
        same = (got == rowwise) | (np.isnan(got) & np.isnan(rowwise))
        if np.all(same):
            return 0.0  # identical, NaN for NaN: nothing to tell about the axis
        both_nan = np.isnan(got) & np.isnan(rowwise)
        got, rowwise = np.where(both_nan, 0.0, got), np.where(both_nan, 0.0, rowwise)
        # Both must lie within the budget of the same reference: allow twice the budget.
        refs_rows = env.rows(z, axis)
        ns = mp_rows(env, ex[extra], axis) if extra else None
        tols: list[MPF] = []
        for i, r in enumerate(refs_rows):
            tols.extend(_tolerances(fname, env, r, None if ns is None else ns[i]))
        ctx = context(env.prec)
        a = assess(got, [ctx.mpf(float(v)) for v in rowwise], [2 * t for t in tols], env.dtype,
                   labeler(z, axis, reduce), f"{fname}(z, axis={axis}) vs row by row")
        a.raise_if_bad()
        return a.ratio
    return check


def _tolerances(fname: str, env: Env, r: RowRef,
                extra: Sequence[MPF] | None) -> Sequence[MPF]:
    m = env.stable
    if fname == "softmax":
        return m.softmax(r)
    if fname == "log_softmax":
        return m.log_softmax(r)
    if fname == "logsumexp":
        return [m.logsumexp(r)]
    if fname == "softmax_vjp":
        assert extra is not None
        return m.vjp(r, extra)
    if fname == "cross_entropy":
        assert extra is not None
        return [m.cross_entropy(r, extra)]
    assert extra is not None
    return m.grad(r, extra)


def _widened(fname: str, ex: Example) -> Example:
    """The example tiled along the softmax axis to at least 64 entries: summation order can only
    change a sum of three or more terms, and vectorised reductions differ on long rows."""
    if fname == "dense_grads" or fname in _LOSS_API:
        return ex
    axis = ex["axis"]
    reps = max(1, -(-64 // max(1, ex["z"].shape[axis])))
    out = {**ex, "z": np.concatenate([ex["z"]] * reps, axis=axis)}
    for key in ("n", "v"):
        if key in ex:
            out[key] = np.concatenate([ex[key]] * reps, axis=axis)
    return out


def contract_deterministic(fname: str) -> Check:
    def check(env: Env, ex: Example) -> float:
        from softmax_oracle.targets.call import _to_numpy

        # Three calls: nondeterminism (unordered reductions, random tie-breaking) often changes
        # only the last bit, and only on some calls. No reference is needed, so calls are cheap.
        pairs: list[tuple[Any, Any, str]] = []
        for case in (ex, _widened(fname, ex)):
            first = _call_for(fname, env, case)
            for _ in range(2):
                again = _call_for(fname, env, case)
                where = "" if case is ex else (f" (on the input tiled to "
                                               f"{case['z'].shape[case['axis']]} entries along "
                                               f"the axis)")
                pairs.extend((a, b, where) for a, b in (zip(first, again) if fname in
                                                        _TUPLES else [(first, again)]))
        for a, b, where in pairs:
            a64 = np.asarray(_to_numpy(a)).astype(np.float64)
            b64 = np.asarray(_to_numpy(b)).astype(np.float64)
            same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
            if a64.shape != b64.shape or not np.all(same):
                raise Refuted(f"{fname} gave different results for the same input on two calls"
                              f"{where} ({int(np.sum(~same))} elements differ)")
        return 0.0
    return check
