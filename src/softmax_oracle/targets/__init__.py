"""Targets: the implementations under test, plugged in as values.

A target is any module or object exposing some of the protocol functions (see ``PROTOCOL``). It may
also carry a ``__softmax_oracle__`` dict describing itself:

``name`` / ``version``
    shown in results and reports;
``dtypes``
    the dtype names it supports (others are "not applicable");
``compute_dtype``
    maps a dtype name to the dtype it computes in internally, e.g. ``{"float16": "float32"}``
    for half-precision kernels that accumulate in float32;
``exp``
    a callable giving the backend's own ``exp`` on a numpy array of a dtype, used to probe at run
    time whether the backend flushes subnormals to zero;
``loss``
    what the loss API (``cross_entropy_loss``, ``cross_entropy_loss_grad``,
    ``linear_cross_entropy``) supports: ``{"targets": ["index", "probability"], "reductions":
    ["none", "sum", "mean"], "options": ["weight", "ignore_index", "label_smoothing"]}``. Each
    key is optional; by default the options and reductions are read from the signature of the
    loss function (a keyword it does not accept is not supported) and targets are class indices.
    A claim that needs something unsupported is "not applicable".

Built-in targets are named by short names (``numpy``, ``naive``, ``seed``, ``reference``, ``scipy``,
``torch``, ``jax``, ``optax``, and the chunked ``F.linear_cross_entropy`` paths ``torch-lce-auto``,
``torch-lce-accurate``, ``torch-lce-balanced``, ``torch-lce-compact``,
``torch-lce-balanced-fp32``, ``torch-lce-compact-fp32``) and imported only when asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["BUILTIN", "LOSS_FUNCTIONS", "LOSS_OPTIONS", "PACKAGE", "PROTOCOL", "REDUCTIONS",
           "LossSupport", "Target", "TargetError", "load_target"]

#: The plug-in protocol: function name -> call signature (as documented).
PROTOCOL: dict[str, str] = {
    "softmax": "softmax(z, axis=-1)",
    "log_softmax": "log_softmax(z, axis=-1)",
    "logsumexp": "logsumexp(z, axis=-1)",
    "softmax_vjp": "softmax_vjp(z, v, axis=-1)",
    "cross_entropy": "cross_entropy(z, n, axis=-1)",
    "cross_entropy_grad": "cross_entropy_grad(z, n, axis=-1)",
    "dense_grads": "dense_grads(W, b, x, n)",
    "cross_entropy_loss": "cross_entropy_loss(z, y, *, weight=None, ignore_index=-100, "
                          "label_smoothing=0.0, reduction='mean')",
    "cross_entropy_loss_grad": "cross_entropy_loss_grad(z, y, *, weight=None, ignore_index=-100, "
                               "label_smoothing=0.0, reduction='mean')",
    "linear_cross_entropy": "linear_cross_entropy(x, W, b, y, *, weight=None, ignore_index=-100, "
                            "label_smoothing=0.0, reduction='mean')",
}

#: The loss API: functions taking class-index or probability targets and keyword options.
LOSS_FUNCTIONS = ("cross_entropy_loss", "cross_entropy_loss_grad", "linear_cross_entropy")
#: The loss API's keyword options besides ``reduction``.
LOSS_OPTIONS = ("weight", "ignore_index", "label_smoothing")
REDUCTIONS = ("none", "sum", "mean")
TARGET_FORMS = ("index", "probability")

#: Number of positional array arguments each protocol function takes.
_ARITY: dict[str, int] = {
    "softmax": 1,
    "log_softmax": 1,
    "logsumexp": 1,
    "softmax_vjp": 2,
    "cross_entropy": 2,
    "cross_entropy_grad": 2,
    "dense_grads": 4,
    "cross_entropy_loss": 2,
    "cross_entropy_loss_grad": 2,
    "linear_cross_entropy": 4,
}

#: Built-in target name -> (module or ``module:attribute``, pip extra that provides its
#: framework, or None).
BUILTIN: dict[str, tuple[str, str | None]] = {
    "reference": ("softmax_oracle.targets.builtin_reference", None),
    "seed": ("softmax_oracle.targets.builtin_seed", None),
    "numpy": ("softmax_oracle.targets.builtin_numpy", None),
    "naive": ("softmax_oracle.targets.builtin_naive", None),
    "scipy": ("softmax_oracle.targets.fw_scipy", "scipy"),
    "torch": ("softmax_oracle.targets.fw_torch", "torch"),
    "jax": ("softmax_oracle.targets.fw_jax", "jax"),
    "optax": ("softmax_oracle.targets.fw_optax", "optax"),
    **{f"torch-lce-{p}": (f"softmax_oracle.targets.fw_torch_lce:{p.replace('-', '_')}", "torch")
       for p in ("auto", "accurate", "balanced", "compact", "balanced-fp32", "compact-fp32")},
}

#: The package each built-in target computes with (for install hints and version listings).
PACKAGE: dict[str, str] = {"reference": "mpmath", "seed": "numpy", "numpy": "numpy",
                           "naive": "numpy", "scipy": "scipy", "torch": "torch", "jax": "jax",
                           "optax": "optax", **{n: "torch" for n in BUILTIN if
                                                n.startswith("torch-lce-")}}


class TargetError(Exception):
    """The target could not be loaded or does not follow the protocol. Exit code 2."""


@dataclass(frozen=True)
class LossSupport:
    """What a target's loss API supports: target forms, reductions and keyword options."""

    targets: tuple[str, ...] = ("index",)
    reductions: tuple[str, ...] = REDUCTIONS
    options: tuple[str, ...] = LOSS_OPTIONS

    def missing(self, *, targets: str = "", reduction: str = "",
                options: tuple[str, ...] = ()) -> str:
        """Empty if supported, else what is missing (for "not applicable")."""
        if targets and targets not in self.targets:
            return f"{targets} targets"
        if reduction and reduction not in self.reductions:
            return f"reduction={reduction!r}"
        absent = [o for o in options if o not in self.options]
        return ", ".join(absent)


@dataclass(frozen=True)
class Target:
    """A loaded implementation: its protocol functions and what it declares about itself."""

    name: str
    functions: Mapping[str, Callable[..., Any]]
    version: str = ""
    dtypes: tuple[str, ...] | None = None  # None: every dtype the kit knows
    compute_dtype: Mapping[str, str] = field(default_factory=dict)
    exp: Callable[[Any], Any] | None = None
    is_reference: bool = False
    loss: LossSupport = field(default_factory=LossSupport)

    def has(self, *names: str) -> bool:
        return all(n in self.functions for n in names)

    def supports(self, dtype: str) -> bool:
        return self.dtypes is None or dtype in self.dtypes


def _collect(obj: Any, name: str) -> Target:
    functions: dict[str, Callable[..., Any]] = {}
    problems = []
    for fname, arity in _ARITY.items():
        fn = getattr(obj, fname, None)
        if fn is None:
            continue
        if not callable(fn):
            problems.append(f"{fname} is a {type(fn).__name__}, not a function")
            continue
        problem = _signature_problem(fn, fname, arity)
        if problem:
            problems.append(problem)
            continue
        functions[fname] = fn
    if problems:
        raise TargetError(
            f"target {name!r} does not follow the protocol:\n  "
            + "\n  ".join(problems)
            + "\nexpected signatures: "
            + "; ".join(PROTOCOL.values())
        )
    if not functions:
        raise TargetError(
            f"target {name!r} has none of the protocol functions "
            f"({', '.join(PROTOCOL)}); nothing to check"
        )
    info = getattr(obj, "__softmax_oracle__", None) or {}
    if not isinstance(info, Mapping):
        raise TargetError(f"target {name!r}: __softmax_oracle__ must be a dict")
    version = str(info.get("version", getattr(obj, "__version__", "")))
    dtypes = info.get("dtypes")
    loss = _loss_support(name, functions, info.get("loss"))
    return Target(
        name=str(info.get("name", name)),
        functions=functions,
        version=version,
        dtypes=tuple(dtypes) if dtypes is not None else None,
        compute_dtype=dict(info.get("compute_dtype", {})),
        exp=info.get("exp"),
        is_reference=bool(info.get("is_reference", False)),
        loss=loss,
    )


def _loss_support(name: str, functions: Mapping[str, Callable[..., Any]],
                  declared: Any) -> LossSupport:
    """The declared loss support, completed from the loss function's signature."""
    declared = {} if declared is None else declared
    if not isinstance(declared, Mapping):
        raise TargetError(f"target {name!r}: __softmax_oracle__['loss'] must be a dict such as "
                          f"{{'targets': ['index', 'probability'], 'reductions': "
                          f"{list(REDUCTIONS)}, 'options': {list(LOSS_OPTIONS)}}}")
    unknown = set(declared) - {"targets", "reductions", "options"}
    if unknown:
        raise TargetError(f"target {name!r}: unknown key(s) {sorted(unknown)} in "
                          f"__softmax_oracle__['loss'] (known: targets, reductions, options)")
    accepted = _keywords(next((functions[f] for f in LOSS_FUNCTIONS if f in functions), None))
    default_options = tuple(o for o in LOSS_OPTIONS if accepted is None or o in accepted)
    default_reductions = REDUCTIONS if accepted is None or "reduction" in accepted else ("mean",)
    out = {}
    for key, allowed, default in (("targets", TARGET_FORMS, ("index",)),
                                  ("reductions", REDUCTIONS, default_reductions),
                                  ("options", LOSS_OPTIONS, default_options)):
        value = declared.get(key, default)
        if isinstance(value, str) or not all(v in allowed for v in value):
            raise TargetError(f"target {name!r}: __softmax_oracle__['loss'][{key!r}] must be a "
                              f"list drawn from {list(allowed)}, not {value!r}")
        out[key] = tuple(value)
    return LossSupport(**out)


def _keywords(fn: Callable[..., Any] | None) -> set[str] | None:
    """The keyword parameters fn accepts (None: any, or it cannot be told)."""
    if fn is None:
        return None
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                 inspect.Parameter.POSITIONAL_OR_KEYWORD)}


def _signature_problem(fn: Callable[..., Any], fname: str, arity: int) -> str | None:
    """Say why fn cannot be called as the protocol calls it, or None if it can."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # builtins and C functions: find out when called
    args: list[Any] = [object()] * arity
    kwargs = {} if fname == "dense_grads" or fname in LOSS_FUNCTIONS else {"axis": -1}
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        return f"{fname}{sig} cannot be called as {PROTOCOL[fname]}: {e}"
    return None


def load_target(spec: str | ModuleType | Any) -> Target:
    """Resolve a target given as a built-in name, ``package.module[:attribute]``, a file path
    ``path/to/file.py[:attribute]``, or an object/module that exposes protocol functions."""
    if isinstance(spec, Target):
        return spec
    if not isinstance(spec, str):
        name = getattr(spec, "__name__", type(spec).__name__)
        return _collect(spec, name)
    if spec in BUILTIN:
        return _load_builtin(spec)
    return _collect(_resolve(spec), spec)


def _load_builtin(name: str) -> Target:
    spec, extra = BUILTIN[name]
    module_name, _, attr = spec.partition(":")
    if extra is not None:
        package = PACKAGE[name]
        if importlib.util.find_spec(package) is None:
            raise TargetError(
                f"the {name!r} target needs {package}: pip install 'softmax-oracle[{extra}]'"
            )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = f": pip install 'softmax-oracle[{extra}]'" if extra else ""
        raise TargetError(f"the {name!r} target could not be imported ({e}){hint}") from None
    return _collect(getattr(module, attr) if attr else module, name)


def _resolve(spec: str) -> Any:
    module_part, _, attr = spec.partition(":")
    tried = []
    module: ModuleType | None = None
    if module_part.endswith(".py") or os.sep in module_part:
        path = os.path.abspath(module_part)
        tried.append(f"file {path}")
        if not os.path.isfile(path):
            raise TargetError(f"cannot load target {spec!r}: no such file {path}")
        mod_name = "_softmax_oracle_user_" + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise TargetError(f"cannot load target {spec!r}: {path} is not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        # As `python path/to/impl.py` would, let the file import the modules next to it.
        directory = os.path.dirname(path)
        added = directory not in sys.path
        if added:
            sys.path.insert(0, directory)
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # a target that exits is not loadable
            raise TargetError(f"cannot load target {spec!r}: executing {path} raised "
                              f"{type(e).__name__}: {e}") from None
        finally:
            if added and directory in sys.path:
                sys.path.remove(directory)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        tried.append(f"module {module_part!r}")
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as e:
            builtin = ", ".join(BUILTIN)
            raise TargetError(
                f"cannot load target {spec!r}: no module named {e.name!r} "
                f"(tried to import {module_part!r}; built-in targets are {builtin})"
            ) from None
        except (Exception, SystemExit) as e:  # a target that exits is not loadable
            raise TargetError(f"cannot load target {spec!r}: importing {module_part!r} raised "
                              f"{type(e).__name__}: {e}") from None
    obj: Any = module
    if attr:
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise TargetError(
                    f"cannot load target {spec!r}: {module_part!r} has no attribute {part!r}"
                )
            obj = getattr(obj, part)
    return obj
