"""Adversarial inputs: Hypothesis strategies that go where softmax bugs live.

Every strategy is built for one floating-point format (a
:class:`~softmax_oracle.oracle.dtypes.DType`) and returns numpy arrays of that format. Values
are generated in float64 and cast once; the cast array *is* the input (nothing downstream should
compare against the float64 values).

Logits are drawn from one *base family* and up to two *modifiers* (see :data:`LOGIT_FAMILIES`),
then optionally masked with -inf. Each example carries ``regime``: the tags of everything that
shaped it, so that a run can count what it exercised and a report can say which regime refuted a
claim.

Hypothesis makes the structural choices (family, sizes, axis, scales), so shrinking heads for 1-D,
short rows, ``axis=-1`` and plain values; the bulk of the entries, and the masks, come from a numpy
generator seeded by a drawn integer. (Filling arrays entry by entry through Hypothesis gives mostly
one background value, and masks that are almost always empty.)

This module is the public surface; the private modules behind it, in the order they build on
each other:

  _common   per-format thresholds (where exp over- and underflows), the generator, row helpers
  _shapes   layouts: row lengths, batch axes, vocabulary-sized rows
  _logits   the logit families, their modifiers, masks: :func:`logits`
  _targets  cross-entropy targets and softmax-VJP cotangents on top of logits
  _dense    a dense layer feeding softmax cross-entropy
  _loss     the loss API: class indices or probabilities, weights, smoothing, ignore_index
  _shifts   metamorphic helpers: exactly representable shifts, permutations
"""

from softmax_oracle.spec.strategies._dense import dense_layers
from softmax_oracle.spec.strategies._logits import LOGIT_FAMILIES, logits
from softmax_oracle.spec.strategies._loss import LOSS_REGIMES, fused_inputs, loss_inputs
from softmax_oracle.spec.strategies._shapes import VOCAB_MIN, VOCAB_SIZES
from softmax_oracle.spec.strategies._shifts import (
    is_exact_shift,
    permutations,
    representable_shift,
)
from softmax_oracle.spec.strategies._targets import (
    COTANGENT_FAMILIES,
    TARGET_KINDS,
    logits_and_cotangent,
    logits_and_targets,
)

__all__ = [
    "COTANGENT_FAMILIES",
    "LOGIT_FAMILIES",
    "LOSS_REGIMES",
    "TARGET_KINDS",
    "VOCAB_MIN",
    "VOCAB_SIZES",
    "dense_layers",
    "fused_inputs",
    "is_exact_shift",
    "logits",
    "logits_and_cotangent",
    "logits_and_targets",
    "loss_inputs",
    "permutations",
    "representable_shift",
]
