"""Mutation testing of the claims: do they notice small changes to a careful implementation?

Classic operator mutations are applied, one at a time, to the source of the kit's numpy target
(src/softmax_oracle/targets/builtin_numpy.py) through the ``ast`` module: arithmetic operator
swaps, comparison flips, constants (to 0, to 1, negated), ``True``/``False``, removing a
``keepdims``, changing an ``axis``, swapping ``log1p``/``log``, ``expm1``/``exp``, ``max``/``min``
(and their ``arg``/element-wise forms), ``isneginf``/``isposinf``, swapping the branches of
``np.where``, dropping a unary minus, and deleting an assignment or expression statement. Each
mutant is loaded as a target from a temporary file and checked with
``check(mutant, dtypes=["float64", "float32"], level="accurate", profile=...)``, restricted to
the claims that involve a protocol function whose code reaches the mutated function (all claims
for a mutant of ``_exp``, which the kit calls to probe for flushed subnormals), and stopped at the
first refuted claim. A mutant is *killed* when a claim is refuted or errors, or when its check
hangs (runs far longer than the unmutated module's). Each mutant runs in a fresh supervised worker
process of the kit's scheduler and a fresh directory (no example database is shared).

    python benchmarks/mutation.py --profile ci --confirm-dtypes float16,bfloat16 \
        --out docs/benchmarks.md
    python benchmarks/mutation.py --list            # the mutants, without running them

``--confirm-dtypes`` (and ``--confirm PROFILE``) re-check the survivors in other dtypes (or with
another profile): the float16 code for rows of more than 65,504 entries runs only on the
``thorough`` profile's vocabulary-sized rows, so ``--confirm thorough --confirm-dtypes float16``
is what reaches it. ``--only`` takes mutant numbers, or classes of ``CLASSIFIED`` (``gap``,
``within-budget``, ``equivalent``): a rerun of some mutants completes ``LAST_FULL_RUN``.

    python benchmarks/mutation.py --only gap,within-budget --dtypes float16 \
        --confirm thorough --out docs/benchmarks.md

Survivors are listed with their classification from ``CLASSIFIED`` below; one missing from it is
reported as *unclassified*. The score is killed / (mutants - equivalent ones). ``--out FILE``
rewrites only the part of FILE between ``<!-- mutation:begin -->`` and ``<!-- mutation:end -->``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared import produced_by, provenance, run_jobs, splice, versions

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src",
                      "softmax_oracle", "targets", "builtin_numpy.py")

__all__ = ["CLASSIFIED", "Mutant", "mutants", "run_mutant"]

_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.MatMult: ast.Mult, ast.Pow: ast.Mult,
}
_COMPARE_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,), ast.NotIn: (ast.In,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
_FUNCTION_SWAPS = {
    "log1p": "log", "log": "log1p", "expm1": "exp", "exp": "expm1", "max": "min", "min": "max",
    "argmax": "argmin", "argmin": "argmax", "maximum": "minimum", "minimum": "maximum",
    "isneginf": "isposinf", "isposinf": "isneginf",
}


@dataclass(frozen=True)
class Mutant:
    """One mutation: where (function, line), what (operator), and the statement before and
    after it; ``source`` is the whole mutated module."""

    index: int
    function: str
    line: int
    operator: str
    before: str
    after: str
    source: str = ""

    @property
    def key(self) -> str:
        """Identifies the mutant independently of line numbers (for ``CLASSIFIED``)."""
        return f"{self.function}: {self.before} -> {self.after}"


def _number(node: ast.AST) -> float | int | None:
    """The value of a numeric literal, including a negated one (-1 is USub(1) in the AST)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value  # type: ignore[no-any-return]
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)):
        return -node.operand.value  # type: ignore[no-any-return]
    return None


def _literal(value: float | int) -> ast.expr:
    if value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


def _replacements(node: ast.AST, parent: ast.AST | None) -> Iterator[tuple[str, Any]]:
    """(operator name, replacement node) for each mutation of ``node`` itself; a replacement of
    None deletes the statement."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        yield "arithmetic", ast.BinOp(node.left, _BINOP_SWAPS[type(node.op)](), node.right)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        for new in _COMPARE_SWAPS.get(type(node.ops[0]), ()):
            yield "comparison", ast.Compare(node.left, [new()], node.comparators)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _number(node) is None:
        yield "unary minus", node.operand
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield "constant", ast.Constant(not node.value)
    elif _number(node) is not None and not (
            isinstance(node, ast.Constant) and isinstance(parent, ast.UnaryOp)):
        value = _number(node)
        assert value is not None
        is_axis = isinstance(parent, ast.keyword) and parent.arg == "axis"
        targets = [0, 1, -value] if not is_axis else [0 if value != 0 else -1]
        seen = {value}
        for new in targets:
            new = type(value)(new)
            if new not in seen:
                seen.add(new)
                yield ("axis" if is_axis else "constant"), _literal(new)
    elif isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else None
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id == "np" and name in _FUNCTION_SWAPS):
            yield "function", ast.Call(ast.Attribute(func.value, _FUNCTION_SWAPS[name]),
                                       node.args, node.keywords)
        if name == "where" and len(node.args) == 3:
            yield "where branches", ast.Call(func, [node.args[0], node.args[2], node.args[1]],
                                             node.keywords)
        kept = [k for k in node.keywords if k.arg != "keepdims"]
        if len(kept) != len(node.keywords):
            yield "keepdims", ast.Call(func, node.args, kept)
        for k in node.keywords:
            if k.arg == "axis" and isinstance(k.value, ast.Name):
                other = [kw if kw is not k else ast.keyword("axis", _literal(-1))
                         for kw in node.keywords]
                yield "axis", ast.Call(func, node.args, other)
    elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr)) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        yield "delete statement", None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _statement_of(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST:
    """The innermost statement holding ``node`` (the node itself if it is one); shown by its
    first line, which for a ``while``, ``if`` or ``def`` is the header."""
    while not isinstance(node, ast.stmt) and node in parents:
        node = parents[node]
    return node


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` is among the fields of ``parent``."""
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise ValueError("node not found in its parent")


def _one_line(node: ast.AST) -> str:
    lines = ast.unparse(node).splitlines()
    return lines[0] if lines else ""


def mutants(source: str | None = None) -> list[Mutant]:
    """Every mutant of the module's function bodies (docstrings excepted), without duplicates
    and without mutants identical to the original."""
    if source is None:
        with open(SOURCE, encoding="utf-8") as f:
            source = f.read()
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    parents = _parents(tree)
    owner = {n: f.name for f in tree.body if isinstance(f, ast.FunctionDef)
             for n in ast.walk(f) if n is not f}
    seen = {ast.unparse(tree)}
    out: list[Mutant] = []
    for i, node in enumerate(nodes):
        if node not in owner:
            continue
        for j, (operator, _) in enumerate(_replacements(node, parents.get(node))):
            fresh = ast.parse(source)  # each mutant starts from the original
            fresh_nodes = list(ast.walk(fresh))
            fresh_parents = _parents(fresh)
            target = fresh_nodes[i]
            stmt = _statement_of(target, fresh_parents)
            before = _one_line(stmt)
            new = list(_replacements(target, fresh_parents.get(target)))[j][1]
            _replace(fresh_parents[target], target, ast.Pass() if new is None else new)
            text = ast.unparse(ast.fix_missing_locations(fresh))
            if text in seen:
                continue
            seen.add(text)
            after = "pass" if new is None or stmt is target else _one_line(stmt)
            out.append(Mutant(len(out), owner[node], getattr(node, "lineno", 0), operator,
                              before, after, text))
    return out


# --- running -------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised from ``on_result`` to end a check at its first refuted (or erroring) claim."""


def _call_graph(source: str) -> dict[str, set[str]]:
    """For each top-level function, the top-level functions it calls, directly or not."""
    tree = ast.parse(source)
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    calls = {name: {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and n.id in funcs}
             for name, f in funcs.items()}
    reach: dict[str, set[str]] = {}
    for name in funcs:
        todo, seen = [name], {name}
        while todo:
            for callee in calls[todo.pop()] - seen:
                seen.add(callee)
                todo.append(callee)
        reach[name] = seen
    return reach


def claims_for(function: str, source: str | None = None, level: str = "accurate") -> list[str]:
    """The claims that can notice a change to ``function``: those needing a protocol function
    whose code reaches it (every claim for ``_exp``, the kit's probe for flushed subnormals)."""
    from softmax_oracle.spec.claims import select
    from softmax_oracle.targets import PROTOCOL

    if source is None:
        with open(SOURCE, encoding="utf-8") as f:
            source = f.read()
    reach = _call_graph(source)
    affected = {p for p in PROTOCOL if function in reach.get(p, ())}
    chosen = select(level=level)
    if function == "_exp":
        return [c.id for c in chosen]
    return [c.id for c in chosen if set(c.needs) & affected]


def _write(mutant: Mutant, directory: str) -> str:
    """The mutant as a file: a target the kit's workers can load by its path."""
    path = os.path.join(directory, f"builtin_numpy_mutant_{mutant.index}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(mutant.source)
    return path


def run_mutant(mutant: Mutant, profile: str = "ci", seed: int | None = None,
               dtypes: Sequence[str] = ("float64", "float32"), level: str = "accurate",
               max_examples: int | None = None, timeout: float = 2.0) -> dict[str, Any]:
    """Check one mutant; killed when a claim is refuted or errors (the check stops there)."""
    from softmax_oracle import TargetError, check

    start = time.perf_counter()
    claims = claims_for(mutant.function, level=level)
    out = {"index": mutant.index, "killed": False, "by": "", "problem": "", "claims": len(claims)}
    stop: dict[str, Any] = {}

    def on_result(res: Any, done: int, total: int) -> None:
        if res.verdict in ("refuted", "error"):
            stop.update(by=f"{res.claim_id}[{res.dtype}]", verdict=res.verdict,
                        problem=(res.shrunk.problem if res.shrunk else res.reason))
            raise _Stop

    with tempfile.TemporaryDirectory(prefix="softmax-oracle-mutant-") as tmp:
        old = os.getcwd()
        os.chdir(tmp)  # no example database carried over between mutants
        try:
            check(_write(mutant, tmp), dtypes=list(dtypes), level=level,
                  claims=",".join(claims), profile=profile, seed=seed,
                  max_examples=max_examples, timeout=timeout, on_result=on_result)
        except TargetError as e:  # the mutant cannot even be imported
            stop.update(by="import", verdict="error", problem=str(e))
        except _Stop:  # on_result stopped the check: the run stops and this comes out as itself
            pass
        finally:
            os.chdir(old)
    if stop:
        lines = str(stop["problem"]).strip().splitlines()
        out.update(killed=True, by=stop["by"], problem=lines[0][:160] if lines else "")
    out["seconds"] = time.perf_counter() - start
    return out


def run_all(selected: Sequence[Mutant], *, jobs: int, limit: float,
            **kwargs: Any) -> list[dict[str, Any]]:
    """Run mutants in worker processes, ``jobs`` at a time. A mutant still running after
    ``limit`` seconds is stopped and counted as killed by a timeout (a hang that the per-call
    deadline turned into a long series of refutations while shrinking); one that crashes the
    process counts as killed too."""

    def failed(mutant: Mutant, why: str) -> dict[str, Any]:
        why = why.splitlines()[0]  # the traceback or the end of stderr that follows: not kept
        if why.startswith("raised"):  # the driver's own failure: reported, never a kill
            return {"index": mutant.index, "killed": False, "by": "", "problem": why,
                    "seconds": 0.0, "driver_error": True}
        timeout = why.startswith("timeout")
        return {"index": mutant.index, "killed": True, "by": "timeout" if timeout else "crash",
                "problem": why, "seconds": limit if timeout else 0.0}

    return run_jobs(functools.partial(run_mutant, **kwargs), selected, jobs=jobs,
                    failed=failed, limit=limit)


# --- classification of survivors and the report --------------------------------------------------

#: Survivors judged by reading them: mutant key -> (class, why). *equivalent*: no input the
#: protocol allows tells the mutant from the original; *within budget*: a worse implementation
#: whose errors stay within the derived budgets, which therefore do not refute it; *gap*: a change
#: of behaviour that no claim or strategy reached, with what now reaches it (a gap that survives a
#: run is listed as such); *other dtypes*: code that only float16 and bfloat16 run (see
#: ``--confirm-dtypes``).
_ARRAYS = ("the kit passes every argument as a numpy array of the dtype under test (the "
           "protocol's domain), so this conversion is the identity")
_LOW_PRECISION = "the float16/bfloat16 product path of _matmul; float64 and float32 use np.matmul"
_MOVE = "return _sum(np.moveaxis(products, {}, {}))"
_PRODUCTS = "products = p[..., :, :, None] {} q[..., None, :, :]"

CLASSIFIED: dict[str, tuple[str, str]] = {
    "_exp: x = np.asarray(x) -> pass": ("equivalent", _ARRAYS),
    "_as_float: x = np.asarray(x) -> pass": ("equivalent", _ARRAYS),
    **{f"{f}: z = _as_float(z) -> pass": ("equivalent", _ARRAYS)
       for f in ("softmax", "log_softmax", "softmax_vjp", "cross_entropy", "cross_entropy_grad")},
    **{f"{f}: {arg} = np.asarray({arg}, dtype={ref}.dtype) -> pass": ("equivalent", _ARRAYS)
       for f, arg, ref in (("softmax_vjp", "v", "z"), ("cross_entropy", "n", "z"),
                           ("cross_entropy_grad", "n", "z"), ("dense_grads", "b", "W"),
                           ("dense_grads", "x", "W"), ("dense_grads", "n", "W"))},
    "dense_grads: W = _as_float(W) -> pass": ("equivalent", _ARRAYS),
    "_exp: return np.asarray(np.exp(x), dtype=x.dtype) -> return np.asarray(np.expm1(x), "
    "dtype=x.dtype)": (
        "equivalent", "_exp only answers the kit's probe for flushed subnormals, whether "
        "exp(ln r_min - 1) is 0; expm1 of it is about -1, not 0, so the answer (numpy does not "
        "flush) and every budget stay the same"),
    "_alg41: shift = np.where(np.isneginf(a), _const(0.0, z.dtype), a) -> shift = np.where("
    "np.isneginf(a), _const(1.0, z.dtype), a)": (
        "equivalent", "the shift of an all -inf row only has to be finite: -inf - 1 is -inf, so "
        "w = 0 and s = 0 as before, and log-sum-exp adds log1p(s) to a, not to the shift"),
    "_sum: x = np.concatenate([paired, x[..., 2 * half:]], axis=-1) if x.shape[-1] % 2 else "
    "paired -> x = np.concatenate([paired, x[..., 2 * half:]], axis=-1) if x.shape[-1] % -2 "
    "else paired": ("equivalent", "n % -2 is 0 or -1: nonzero exactly when n % 2 is"),
    "_matmul: if p.dtype in (np.float32, np.float64): -> if p.dtype not in (np.float32, "
    "np.float64):": (
        "equivalent", "float64 and float32 products take the pairwise-sum path and float16 "
        "takes np.matmul: other, equally accurate algorithms that meet the same budgets (the "
        "claims bound errors, not algorithms)"),
    f"_matmul: {_PRODUCTS.format('*')} -> pass": ("other dtypes", _LOW_PRECISION),
    f"_matmul: {_PRODUCTS.format('*')} -> {_PRODUCTS.format('/')}": (
        "other dtypes", _LOW_PRECISION),
    **{f"_matmul: {_MOVE.format(-2, -1)} -> {_MOVE.format(a, b)}": (
        "other dtypes", _LOW_PRECISION) for a, b in ((0, -1), (2, -1), (-2, 0), (-2, 1))},
    f"_matmul: {_MOVE.format(-2, -1)} -> {_MOVE.format(1, -1)}": (
        "equivalent", "dense_grads calls _matmul on matrices only, so the products have three "
        "axes (rows, inner, cols) and axis 1 is axis -2"),
}

# --- the float16 branch for rows whose sum of exponentials overflows (more than 65,504 entries)

_BITS = "bits = int(np.ceil(np.log2(max(z.shape[-1], {}))))"
_EXPONENT = "exponent = max({}, bits {} int(np.finfo(z.dtype).maxexp) {})"
_SCALED = "scaled = _sum(terms {} _const({}, z.dtype){})"
_LOG = "return np.where({}, {} + e.astype(s.dtype) {} ln2, {})"
_LN2 = "ln2 = _const({}, s.dtype)"
_SCALE = "scale = np.ldexp(_const({}, z.dtype), {}).astype(z.dtype)"
_SOFTMAX = "return w {} scale {} (scale {} s)"

#: Reaches the branch: the thorough profile's float16 vocabulary rows whose exponentials sum past
#: 65,504 (strategies ``sum_overflow``: near-equal logits, 69,600 to 262,144 per row, alone or in
#: a batch of two, the second row's sum sometimes exactly 0 in float16).
_REACHED = ("now refuted on the thorough profile's float16 rows whose exponentials sum past "
            "65,504 (strategy tag sum_overflow)")
_SHORT = ("the branch runs only where a row's sum of exponentials overflows: more than 65,504 "
          "entries")
_LONG_F16 = "within the float16 budgets of such rows (below the table)"
#: Printed under the table when a survivor is within budget for the reason of ``_LONG_F16``.
WITHIN_BUDGET_NOTE = (
    "*Within budget* in the float16 branch: on float16 rows of more than 65,504 entries every "
    "budget of a max-shifted algorithm in any summation order is uninformative: 2u(n + ...) > 64 "
    "absolute for log-sum-exp and log-softmax, a factor expm1(2un) > e^64 for softmax. Recursive "
    "summation in float16 stalls at 2048, so a correct implementation that sums that way is short "
    "by ln(n/2048) >= 3.4 in log-sum-exp and 32 times too large in its probabilities, and rightly "
    "passes; so do these mutants. What the claims still see there is caught: crashes, inf, NaN, "
    "and probabilities outside [0, 1].")


def _gap(what: str) -> tuple[str, str]:
    return "gap", f"{what}: {_REACHED}"


_OVERFLOW_BRANCH: dict[str, tuple[str, str]] = {
    # equivalent: only rows of n > 65,504 entries (bits >= 17) reach these lines
    **{f"_alg41: {_BITS.format(2)} -> {_BITS.format(v)}": (
        "equivalent", f"{_SHORT}, so z.shape[-1] is the larger argument of max")
       for v in (0, 1, -2)},
    **{f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(v, '-', '+ 2')}": (
        "equivalent", f"{_SHORT} (bits >= 17), where bits - 16 + 2 >= 3 exceeds the first "
                      "argument of max")
       for v in (0, -1)},
    f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
    f"{_LOG.format('e > 1', 'np.log(s)', '*', 'np.log1p(s)')}": (
        "equivalent", f"e is 0 or the scaling exponent bits - 14 >= 3 ({_SHORT})"),
    # within budget
    "_alg41: e = np.where(overflowed, exponent, 0) -> pass": (
        "within budget", "e stays 0: log-sum-exp and log-softmax miss e ln 2 (2.1 or 2.8), "
                         f"softmax is 2^e (8 or 16) times too large; {_LONG_F16}"),
    f"_log1p_sum: {_LN2.format('np.log(2.0)')} -> {_LN2.format('np.log1p(2.0)')}": (
        "within budget", f"log-sum-exp off by e ln(3/2) <= 1.7; {_LONG_F16}"),
    f"_log1p_sum: {_LN2.format('np.log(2.0)')} -> {_LN2.format('np.log(1.0)')}": (
        "within budget", f"log-sum-exp short by e ln 2 <= 2.8; {_LONG_F16}"),
    f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
    "return np.where(e > 0, np.log(s) - e.astype(s.dtype) * ln2, np.log1p(s))": (
        "within budget", f"log-sum-exp short by 2e ln 2 <= 5.6; {_LONG_F16}"),
    f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
    f"{_LOG.format('e > 0', 'np.log(s)', '/', 'np.log1p(s)')}": (
        "within budget", f"log-sum-exp off by e (1/ln 2 - ln 2) <= 3.0; {_LONG_F16}"),
    f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
    f"{_LOG.format('e > 0', 'np.log1p(s)', '*', 'np.log1p(s)')}": (
        "within budget", "log1p(s) - log(s) < 1/s <= 2^-12 for a scaled sum s >= 2^12 (under "
                         "half an ulp of a log-probability, |l| >= 11); "
                         f"{_LONG_F16}"),
    f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(1, '-', '+ 1')}": (
        "within budget", "scaling by one power of two less keeps the scaled sum below 2^15 "
                         "(finite) and loses fewer terms below the subnormals: only the roundings "
                         "of log(s) and e ln 2 differ"),
    f"_softmax_last: {_SOFTMAX.format('*', '/', '+')} -> {_SOFTMAX.format('/', '/', '+')}": (
        "within budget", f"probabilities 2^2e (64 or 256) times too large, still in [0, 1]; "
                         f"{_LONG_F16}"),
    f"_softmax_last: {_SCALE.format(1.0, '-e')} -> {_SCALE.format(1.0, 'e')}": (
        "within budget", f"probabilities about 2^2e (64 or 256) times too large, still in "
                         f"[0, 1]; {_LONG_F16}"),
    # gaps, now reached
    **{k: _gap(why) for k, why in {
        f"_log1p_sum: {_LN2.format('np.log(2.0)')} -> pass": "NameError",
        f"_softmax_last: {_SCALE.format(1.0, '-e')} -> pass": "NameError",
        f"_alg41: {_BITS.format(2)} -> pass": "NameError",
        f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> pass": "NameError",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> pass":
            "NameError",
        f"_log1p_sum: {_LN2.format('np.log(2.0)')} -> {_LN2.format('np.log(0.0)')}":
            "log-sum-exp -inf",
        f"_log1p_sum: {_LN2.format('np.log(2.0)')} -> {_LN2.format('np.log(-2.0)')}":
            "log-sum-exp NaN",
        "_alg41: s = np.where(overflowed, scaled, s) -> pass": "log-sum-exp +inf",
        "_alg41: s = np.where(overflowed, scaled, s) -> s = np.where(overflowed, s, scaled)":
            "log-sum-exp +inf",
        "_alg41: overflowed = np.isposinf(s) & np.isfinite(a) -> overflowed = np.isneginf(s) & "
        "np.isfinite(a)": "log-sum-exp +inf",
        f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(1, '-', '- 2')}":
            "the scaled sum overflows again beyond 131,040 entries",
        f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(1, '-', '+ -2')}":
            "the scaled sum overflows again beyond 131,040 entries",
        f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(1, '-', '+ 0')}":
            "the scaled sum overflows again for ties of 131,040 to 131,072 and 262,081 or more "
            "entries",
        f"_alg41: {_EXPONENT.format(1, '-', '+ 2')} -> {_EXPONENT.format(1, '+', '+ 2')}":
            "2^-35 is 0 in float16: log-sum-exp -inf, softmax NaN",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('/', '2.0 ** (-exponent)', ', keepdims=True')}": "log-sum-exp +inf",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '2.0 ** exponent', ', keepdims=True')}": "log-sum-exp +inf",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '1.0 ** (-exponent)', ', keepdims=True')}": "log-sum-exp +inf",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '0.0 ** (-exponent)', ', keepdims=True')}": "ZeroDivisionError",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '2.0 * -exponent', ', keepdims=True')}": "log-sum-exp NaN",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '(-2.0) ** (-exponent)', ', keepdims=True')}":
            "a negative sum for odd exponents (rows of 65,505 to 131,072 entries): NaN",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '2.0 ** (-exponent)', '')}":
            "a batch of two rows broadcasts to (2, 2): ValueError",
        f"_alg41: {_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=True')} -> "
        f"{_SCALED.format('*', '2.0 ** (-exponent)', ', keepdims=False')}":
            "a batch of two rows broadcasts to (2, 2): ValueError",
        f"_alg41: {_BITS.format(2)} -> "
        f"{_BITS.format(2).replace('z.shape[-1]', 'z.shape[0]')}":
            "a batch's first axis (1 or 2) for the row length: +inf beyond 131,040 entries",
        f"_alg41: {_BITS.format(2)} -> "
        f"{_BITS.format(2).replace('z.shape[-1]', 'z.shape[1]')}": "IndexError on a 1-D row",
        "_alg41: e = np.where(overflowed, exponent, 0) -> e = np.where(overflowed, 0, exponent)":
            "-inf for a row of the same batch whose sum is 0 (log(0) + e ln 2)",
        "_alg41: e = np.where(overflowed, exponent, 0) -> e = np.where(overflowed, exponent, 1)":
            "-inf for a row of the same batch whose sum is 0 (log(0) + ln 2)",
        f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
        f"return np.where(e > 0, np.log1p(s), np.log(s) + e.astype(s.dtype) * ln2)":
            "-inf for a row of the same batch whose sum is 0 (log(0))",
        f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
        f"{_LOG.format('e >= 0', 'np.log(s)', '*', 'np.log1p(s)')}":
            "-inf for a row of the same batch whose sum is 0 (log(0))",
        f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
        f"{_LOG.format('e <= 0', 'np.log(s)', '*', 'np.log1p(s)')}":
            "-inf for a row of the same batch whose sum is 0 (log(0))",
        f"_log1p_sum: {_LOG.format('e > 0', 'np.log(s)', '*', 'np.log1p(s)')} -> "
        f"{_LOG.format('e > 0', 'np.log(s)', '*', 'np.log(s)')}":
            "-inf for a row of the same batch whose sum is 0 (log(0))",
        f"_softmax_last: {_SCALE.format(1.0, '-e')} -> {_SCALE.format(0.0, '-e')}":
            "softmax 0 / 0 = NaN on a row of the same batch whose sum is 0",
        f"_softmax_last: {_SCALE.format(1.0, '-e')} -> {_SCALE.format(-1.0, '-e')}":
            "negative probabilities (softmax.in_unit_interval)",
        f"_softmax_last: {_SOFTMAX.format('*', '/', '+')} -> {_SOFTMAX.format('*', '*', '+')}":
            "probabilities above 1 (softmax.in_unit_interval)",
        f"_softmax_last: {_SOFTMAX.format('*', '/', '+')} -> {_SOFTMAX.format('*', '/', '-')}":
            "negative probabilities (softmax.in_unit_interval)",
    }.items()},
}
CLASSIFIED.update(_OVERFLOW_BRANCH)

#: The last run of every mutant, which a rerun of some of them (``--only``) completes: its
#: command, the commit it ran at, its mutants and how many it killed (confirmation included).
LAST_FULL_RUN: dict[str, Any] = {
    "command": "python benchmarks/mutation.py --profile ci --confirm-dtypes float16,bfloat16 "
               "--out docs/benchmarks.md",
    "commit": "9a12864", "mutants": 236, "killed": 168,
}


def _versions() -> str:
    return versions(("numpy", "hypothesis", "mpmath", "gmpy2"))


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def render(all_mutants: Sequence[Mutant], results: Sequence[dict[str, Any]],
           confirmed: dict[int, dict[str, Any]], *, command: str, profile: str, dtypes: str,
           confirm: str, wall: float, load: tuple[float, float], control: dict[str, Any],
           partial: bool = False) -> str:
    """The section. A ``partial`` run (of some mutants) completes ``LAST_FULL_RUN``: its score
    counts that run's kills, and the survivors it does not rerun keep their classification."""
    by_index = {m.index: m for m in all_mutants}
    survivors = [r for r in results if not r["killed"]]
    still = [r for r in survivors if not confirmed.get(r["index"], {}).get("killed")]
    rerun = {by_index[r["index"]].key for r in results}
    kept = [m for m in all_mutants if partial and m.key not in rerun
            and CLASSIFIED.get(m.key, ("",))[0] in ("equivalent", "within budget", "gap")]
    classes = {r["index"]: CLASSIFIED.get(by_index[r["index"]].key, ("unclassified", ""))
               for r in still}
    classes.update({m.index: CLASSIFIED[m.key] for m in kept})
    kinds = Counter(c for c, _ in classes.values())
    killed = len(results) - len(survivors)
    late = len(survivors) - len(still)
    total, before = (LAST_FULL_RUN["mutants"], LAST_FULL_RUN["killed"]) if partial else (
        len(results), 0)
    denominator = total - kinds["equivalent"]
    timeouts = sum(1 for r in results if r["by"] == "timeout")
    what = (f"{len(results)} of the {total} mutants of builtin_numpy.py (a rerun: the other "
            f"{total - len(results)} are those of the full run `{LAST_FULL_RUN['command']}` at "
            f"commit {LAST_FULL_RUN['commit']}, which killed {before} and left the rest "
            f"classified below as not rerun)" if partial
            else f"{len(results)} mutants of builtin_numpy.py")
    lines = [
        produced_by(command, wall, _versions(), load),
        "",
        f"{what}, each checked at the accurate level in "
        f"{dtypes.replace(',', ', ')} with the `{profile}` profile"
        + (f", and the survivors again with the {confirm}" if confirm else "") + ". "
        "The unmutated module, checked the same way with every claim: "
        + (f"refuted by {control['by']} (the driver is broken)" if control["killed"]
           else "no claim refuted") + f" ({control['seconds']:.0f} s)"
        + (f"; with the {confirm}: "
           + (f"refuted by {control['confirm']['by']} (the driver is broken)"
              if control["confirm"]["killed"] else "no claim refuted")
           + f" ({control['confirm']['seconds']:.0f} s)" if control.get("confirm") else "")
        + ".",
        "",
        f"**Mutation score: {before + killed + late} killed / {denominator} non-equivalent "
        f"mutants = {(before + killed + late) / max(denominator, 1):.1%}** "
        f"({kinds['equivalent']} equivalent mutants left out; "
        + (f"{before} killed by the full run, " if partial else "")
        + f"{killed} killed in {dtypes.replace(',', ', ')}"
        + (f", {timeouts} of them by hanging" if timeouts else "")
        + (f"; {late} more by the {confirm}" if confirm else "") + "). "
        f"Survivors: {kinds['equivalent']} equivalent, {kinds['within budget']} within budget, "
        f"{kinds['gap']} gaps"
        + (f", {kinds['other dtypes']} in code only float16 and bfloat16 run"
           if kinds["other dtypes"] else "")
        + (f", **{kinds['unclassified']} not yet classified**" if kinds["unclassified"] else "")
        + ".",
        "",
        "| operator | mutants | killed | equivalent | other survivors |",
        "|---|---|---|---|---|",
    ]
    ops = Counter(by_index[r["index"]].operator for r in results)
    ops_of = {r["index"] for r in results}
    dead = Counter(by_index[r["index"]].operator for r in results
                   if r["killed"] or confirmed.get(r["index"], {}).get("killed"))
    same = Counter(by_index[i].operator for i, (c, _) in classes.items()
                   if c == "equivalent" and i in ops_of)
    for op, count in ops.most_common():
        lines.append(f"| {op} | {count} | {dead[op]} | {same[op]} "
                     f"| {count - dead[op] - same[op]} |")
    firsts = Counter(r["by"].split("[")[0] for r in results
                     if r["killed"] and r["by"] not in ("timeout", "crash", "import"))
    lines += ["", "Claims that refuted mutants first (only the claims that can reach the mutated "
              "function run, in catalogue order"
              + (", " + " before ".join(dtypes.split(",")) if "," in dtypes else "")
              + "; a check stops at its first refutation): "
              + ", ".join(f"`{c}` {k}" for c, k in firsts.most_common()) + "."]
    if late:
        lines += ["", f"Killed only by the {confirm}:", ""]
        for r in survivors:
            c = confirmed.get(r["index"], {})
            if c.get("killed"):
                m = by_index[r["index"]]
                lines.append(f"- #{m.index} {m.function}, line {m.line} ({m.operator}): "
                             f"{_cell(m.before)} → {_cell(m.after)}, by `{c['by']}`")
    errors = [r for r in results if r.get("driver_error")]
    if errors:
        lines += ["", f"**{len(errors)} mutants could not be run** (the driver failed; counted "
                  "as survivors):", ""]
        lines += [f"- #{r['index']}: {r['problem']}" for r in errors]
    lines += ["", "Surviving mutants" + (" (the operator table counts the rerun only; "
                                         "*not rerun*: survivors of the full run)" if kept
                                         else "") + ":", ""]
    if not still and not kept:
        lines.append("none")
    else:
        lines += ["| # | function, line | operator | mutation | class | why |",
                  "|---|---|---|---|---|---|"]
        order = {"unclassified": 0, "gap": 1, "within budget": 2, "other dtypes": 3,
                 "equivalent": 4}
        shown = [r["index"] for r in still] + [m.index for m in kept]
        for i in sorted(shown, key=lambda i: (order.get(classes[i][0], 0), i)):
            m = by_index[i]
            cls, why = classes[i]
            lines.append(f"| {m.index} | {m.function}, {m.line} | {m.operator} "
                         f"| {_cell(m.before)} → {_cell(m.after)} | {cls}"
                         + (" (not rerun)" if i not in ops_of else "")
                         + f" | {why.replace('|', '/')} |")
        if any(_LONG_F16 in classes[i][1] for i in shown):
            lines += ["", WITHIN_BUDGET_NOTE]
    return "\n".join(lines) + "\n"


def _select(everything: Sequence[Mutant], only: str) -> list[Mutant]:
    """Mutants by number, or by class in CLASSIFIED (``within-budget`` for ``within budget``)."""
    chosen: list[Mutant] = []
    for item in (t.strip() for t in only.split(",") if t.strip()):
        if item.isdigit():
            chosen.append(everything[int(item)])
            continue
        cls = item.replace("-", " ")
        if cls not in {c for c, _ in CLASSIFIED.values()}:
            raise SystemExit(f"--only {item!r}: use mutant numbers or the classes "
                             f"{sorted({c.replace(' ', '-') for c, _ in CLASSIFIED.values()})}")
        chosen += [m for m in everything if CLASSIFIED.get(m.key, ("",))[0] == cls]
    return sorted({m.index: m for m in chosen}.values(), key=lambda m: m.index)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="ci", help="profile of the main run (quick or ci)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--confirm", default="",
                   help="re-check the survivors with this profile too (e.g. thorough)")
    p.add_argument("--confirm-dtypes", default="",
                   help="re-check the survivors in these dtypes too (e.g. float16,bfloat16)")
    p.add_argument("--only", default="",
                   help="comma-separated mutant numbers, or classes of CLASSIFIED (gap, "
                        "within-budget, equivalent): rerun those, completing LAST_FULL_RUN")
    p.add_argument("--max-examples", type=int, default=None)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--out", default="-", help="Markdown file whose mutation part is rewritten")
    a = p.parse_args(argv)
    everything = mutants()
    selected = _select(everything, a.only) if a.only else everything
    if a.list:
        for m in selected:
            print(f"#{m.index} {m.function} line {m.line} ({m.operator}): {m.before}  ->  "
                  f"{m.after}")
        return 0
    command = "python benchmarks/mutation.py " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    kwargs = {"profile": a.profile, "seed": a.seed, "max_examples": a.max_examples,
              "dtypes": a.dtypes.split(",")}
    provenance()  # the state of the checkout when the run starts
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    with open(SOURCE, encoding="utf-8") as f:
        original = f.read()
    control = run_mutant(Mutant(-1, "_exp", 0, "none", "", "", original), **kwargs)
    # A mutant taking far longer than the original is hanging (or shrinking a hang).
    limit = 5 * control["seconds"] + 30
    results = run_all(selected, jobs=a.jobs, limit=limit, **kwargs)
    confirmed: dict[int, dict[str, Any]] = {}
    confirm = ""
    if a.confirm or a.confirm_dtypes:
        again = [m for m, r in zip(selected, results) if not r["killed"]]
        confirm_kwargs = {**kwargs, "profile": a.confirm or a.profile,
                          "dtypes": (a.confirm_dtypes or a.dtypes).split(",")}
        confirm = (f"`{confirm_kwargs['profile']}` profile in "
                   f"{', '.join(confirm_kwargs['dtypes'])}")
        # Its own control: another profile takes another time, and a hang is judged against it.
        control["confirm"] = run_mutant(Mutant(-1, "_exp", 0, "none", "", "", original),
                                        **confirm_kwargs)
        confirm_limit = max(limit * 3, 5 * control["confirm"]["seconds"] + 30)
        for r in run_all(again, jobs=a.jobs, limit=confirm_limit, **confirm_kwargs):
            confirmed[r["index"]] = r
    wall = time.perf_counter() - start
    text = render(everything, results, confirmed, command=command.strip(), profile=a.profile,
                  dtypes=a.dtypes, confirm=confirm, wall=wall,
                  load=(load_start, os.getloadavg()[0]),
                  control=control, partial=len(selected) < len(everything))
    if a.out == "-":
        sys.stdout.write(text)
    else:
        splice(a.out, "mutation", text, "Mutation testing of the claims")
    broken = control["killed"] or control.get("confirm", {}).get("killed")
    return 1 if broken or any(r.get("driver_error") for r in results) else 0


if __name__ == "__main__":
    import mutation  # main from the module, so that its jobs pickle as mutation.run_mutant

    sys.exit(mutation.main())
