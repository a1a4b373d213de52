"""The checks of the claims, grouped by what they check.

A check receives an ``Env`` (the target's functions behind a safe call, the dtype, the tolerance
models, the references) and one example, and returns the ratio |error| / budget (<= 1 when the
claim holds), or raises ``Refuted`` with a message saying what, where and by how much.

  common         comparing outputs with references within budgets; numerical differentiation
  softmax        softmax and its vector-Jacobian product
  logsumexp      log-sum-exp
  log_softmax    log-softmax
  cross_entropy  cross-entropy and its gradient
  dense          the gradients of a dense layer
  contracts      the plug-in contract: no mutation, shape and dtype, axes, determinism
  mathematics    statements about the mathematics, the seed audit among them (no target)
"""
