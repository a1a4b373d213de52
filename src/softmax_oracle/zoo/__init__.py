"""The bug zoo: known-bad implementations, each carrying one realistic mistake.

The zoo is the kit's proof that it finds the bugs it claims to find (in the spirit of
Hypothesis's ``tests/quality``): every member of ``ZOO`` must be refuted, in its ``dtype`` and at
its ``level``, by at least one of the claims listed in its ``refuted_by``, the claims that name its
bug. ``CONTROL`` is the careful numpy implementation dressed as a member; it must be refuted by
nothing.

A member implements only the function(s) that carry its bug, plus a correct companion where a
claim needs one: a gradient bug comes with a correct ``cross_entropy`` so that
``cross_entropy_grad.derivative_of_own_loss`` can run, and a log-softmax or loss bug with a correct
``logsumexp`` for ``log_softmax.equals_z_minus_lse`` and ``cross_entropy.lse_form``. The code is
written the way these mistakes are written in practice; each function says in its docstring what
goes wrong, and each member's ``description`` gives an input that shows it. ``CONVENTIONS``
holds what looks like a bug but is a legitimate convention the specification does not state:
the convention claims report it as "differs", not refuted.

Use a member as a target with ``as_target``::

    from softmax_oracle.targets import load_target
    from softmax_oracle.zoo import ZOO, as_target
    target = load_target(as_target(ZOO[0]))

The members are grouped by bug class, each group with the code that carries its bugs:
``_floating_point`` (overflow, underflow, logs of rounded probabilities, cancellation, lost
precision), ``_masks_and_targets``, ``_interface``, ``_derivatives``, ``_formulas`` (wrong
formulas), ``_nondeterminism`` and ``_loss_api`` (ignored rows, label smoothing and class weights
in the loss API, and half precision in its gradients). ``ZOO`` lists them in that order.
"""

from __future__ import annotations

from softmax_oracle.targets import builtin_numpy as _careful
from softmax_oracle.zoo import (
    _derivatives,
    _floating_point,
    _formulas,
    _interface,
    _loss_api,
    _masks_and_targets,
    _nondeterminism,
)
from softmax_oracle.zoo._common import ZooMember, as_target

__all__ = ["CONTROL", "CONVENTIONS", "ZOO", "ZooMember", "as_target"]

ZOO: tuple[ZooMember, ...] = tuple(
    ZooMember(*entry)
    for group in (_floating_point, _masks_and_targets, _interface, _derivatives, _formulas,
                  _nondeterminism, _loss_api)
    for entry in group.ENTRIES
)

#: Not bugs: implementations that follow the other legitimate convention where the specification
#: states one (0 * (-inf) = NaN rather than 0 log 0 = 0). Each must be reported as "differs" by the
#: convention claims of its ``differs_by``, and refuted by none of them.
CONVENTIONS: tuple[ZooMember, ...] = tuple(
    ZooMember(*entry) for entry in _masks_and_targets.CONVENTIONS)

#: The careful numpy implementation as a zoo entry: no claim may refute it.
CONTROL = ZooMember(
    name="control",
    bug_class="none",
    description="the kit's careful numpy implementation (Alg. 4.1 of Blanchard, Higham & Higham "
    "2021); every claim must hold for it.",
    functions={name: getattr(_careful, name) for name in _careful.__all__},
    refuted_by=(),
)
