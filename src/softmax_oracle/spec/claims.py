"""The specification: every claim softmax-oracle checks, in one place.

Each claim states a mathematical or numerical fact about softmax, log-softmax, log-sum-exp,
cross-entropy or their gradients, with its preconditions, its source, the protocol functions it
needs, its level, the inputs it is checked on (a Hypothesis strategy) and its check. Everything else
(pytest ids, the CLI's catalogue, the docs, the report rows) is derived from ``CLAIMS``.

The inputs are adapters over the adversarial strategies (``spec/inputs.py``, over
``spec/strategies``); the checks live in ``spec/checks/``, one module per function checked, plus
the plug-in contract and the mathematics. A check receives an ``Env`` (the target's functions
behind a safe call, the dtype, the tolerance models, the references) and one example, and returns
the ratio |error| / budget (<= 1 when the claim holds), or raises ``Refuted`` with a message
saying what, where and by how much.

Kinds:
  numerical    compares the target's outputs with the mpmath oracle within derived budgets;
  contract     the plug-in contract: returns (raises nothing) on valid inputs, no mutation, shape
               and dtype, axes and batches, determinism;
  convention   which of two legitimate conventions the target follows where the mathematics leaves
               a choice (0 log 0 = 0, or 0 * (-inf) = NaN as most frameworks compute): the verdict
               is "follows" or "differs" (the claim's ``alternative``), never a bug, unless the
               value follows neither convention ("refuted");
  mathematics  a statement about the mathematics itself, checked by the oracle alone (the target
               is not involved); the seed audit lives here, with each statement's expected verdict.

An exception the target raises on a valid input is judged once, by ``<function>.
returns_on_valid_input`` (whose inputs are those of every claim on the function); the other claims
skip that example and say how many they skipped (``engine.search``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from softmax_oracle.oracle.dtypes import DType
from softmax_oracle.spec.checks.common import Check
from softmax_oracle.spec.checks.contracts import (
    contract_axis,
    contract_deterministic,
    contract_no_mutation,
    contract_returns,
    contract_shape_dtype,
)
from softmax_oracle.spec.checks.cross_entropy import (
    check_ce_finite,
    check_ce_gibbs,
    check_ce_lse,
    check_ce_masked,
    check_ce_ref,
    check_grad_fd,
    check_grad_own_loss,
    check_grad_ref,
    check_grad_sum,
)
from softmax_oracle.spec.checks.dense import check_dense, check_dense_empty
from softmax_oracle.spec.checks.log_softmax import (
    check_ls_accurate,
    check_ls_exp,
    check_ls_finite,
    check_ls_lse,
    check_ls_masked,
    check_ls_nonpositive,
    check_ls_ref,
)
from softmax_oracle.spec.checks.logsumexp import (
    check_lse_accurate,
    check_lse_bounds,
    check_lse_finite,
    check_lse_masked,
    check_lse_pos_inf,
    check_lse_ref,
    check_lse_shift,
)
from softmax_oracle.spec.checks.loss import (
    check_dense_fd as check_dense_own_fd,
)
from softmax_oracle.spec.checks.loss import (
    check_fused_fd,
    check_fused_is_linear_then_loss,
    check_fused_mean_of_nothing,
    check_fused_ref,
    check_ignored_rows_removable,
    check_index_is_one_hot,
    check_loss_ref,
    check_mean_is_sum_over_d,
    check_mean_of_nothing,
    check_smoothing_is_mixed,
    check_weight_scale,
)
from softmax_oracle.spec.checks.loss import (
    check_grad_ref as check_loss_grad_ref,
)
from softmax_oracle.spec.checks.mathematics import (
    check_dense_fd,
    check_math_jacobian,
    check_seed,
    check_seed_weights,
    check_sigmoid_mse,
)
from softmax_oracle.spec.checks.softmax import (
    check_softmax_finite,
    check_softmax_masked,
    check_softmax_order,
    check_softmax_perm,
    check_softmax_ref,
    check_softmax_shift,
    check_softmax_sum,
    check_softmax_unit,
    check_vjp_ref,
    check_vjp_sum,
)
from softmax_oracle.spec.inputs import (
    Example,
    Inputs,
    cotangents,
    dense,
    empty_batch,
    focused,
    focused_targets,
    fused,
    inputs_for,
    logits,
    loss,
    loss_scaled,
    math_dense,
    math_rows,
    small,
    targets,
    two_layer,
    with_dir,
    with_mask,
    with_perm,
    with_pos_inf,
    with_shift,
    zero_targets_at_masks,
)
from softmax_oracle.targets.call import returns_claim

__all__ = ["CLAIMS", "KINDS", "TARGET_KINDS", "Claim", "Inputs", "get_claim", "select"]

#: Every kind of claim, in catalogue order; and the kinds that judge a target (the mathematics
#: claims run on the reference target only).
KINDS = ("numerical", "contract", "convention", "mathematics")
TARGET_KINDS = ("numerical", "contract", "convention")


@dataclass(frozen=True)
class Claim:
    """One statement of the specification."""

    id: str
    statement: str
    latex: str
    needs: tuple[str, ...]
    source: str
    strategy: Callable[[DType, Inputs], st.SearchStrategy[Example]] = field(repr=False)
    check: Check = field(repr=False)
    preconditions: tuple[str, ...] = ()
    level: str = "stable"  # "accurate": only run at --level accurate
    kind: str = "numerical"  # one of KINDS
    expect: str = "holds"  # mathematics claims about the seed may be expected "refuted"
    correct: str = ""  # for refuted statements: the correct statement
    convention: str = ""  # for conventions: the stated convention, briefly ("follows")
    alternative: str = ""  # for conventions: the other legitimate convention ("differs")
    examples: float = 1.0  # share of the profile's max_examples
    #: what the loss API must support for the claim to apply: target forms ("index",
    #: "probability"), reductions ("none", "sum", "mean") and options ("weight", ...)
    requires: tuple[str, ...] = ()

    @property
    def function(self) -> str:
        return self.id.split(".", 1)[0]


# =============================================================================== the catalogue

_SRC_BHH = "Blanchard, Higham & Higham (2021), IMA J. Numer. Anal. 41(4)"
_SRC_STD = "standard result"
_SRC_CONTRACT = "softmax-oracle plug-in protocol"
_PROB = "targets n >= 0"

_NUMERIC: list[Claim] = [
    # ---------------------------------------------------------------- softmax
    Claim("softmax.in_unit_interval",
          "softmax outputs lie in [0, 1] and are never NaN for finite (or partly -inf) logits",
          r"0 \le \hat a_j \le 1", ("softmax",), _SRC_STD, logits(vocab=True),
          check_softmax_unit, ("at least one finite logit per row",)),
    Claim("softmax.sums_to_one",
          "each row of softmax sums to one within the sum of its component budgets",
          r"\left|\sum_j \hat a_j - 1\right| \le \sum_j \mathrm{tol}_j", ("softmax",),
          _SRC_BHH + ", Thm 4.3", logits(), check_softmax_sum),
    Claim("softmax.matches_reference",
          "softmax matches the mpmath reference within the shift-invariant budget "
          "g_j expm1(2u(2 gap_j + n + 2μ + (1+μ) ln n + 1)) + 2Φ0",
          r"|\hat a_j - a_j| \le a_j\,\mathrm{expm1}(2u(c\,\mathrm{gap}_j + n + 2\mu + (1+\mu)"
          r"\ln n + 1)) + 2\Phi_0", ("softmax",), _SRC_BHH + ", Thm 4.3; docs/tolerances.md",
          logits(vocab=True), check_softmax_ref),
    Claim("softmax.shift_invariant",
          "softmax(z + c) = softmax(z) for every exactly representable shift c (within budgets)",
          r"\mathrm{softmax}(z + c\mathbf{1}) = \mathrm{softmax}(z)", ("softmax",), _SRC_STD,
          with_shift, check_softmax_shift, ("z + c exact in the dtype and finite",)),
    Claim("softmax.permutation_equivariant",
          "permuting the logits permutes the probabilities",
          r"\mathrm{softmax}(Pz) = P\,\mathrm{softmax}(z)", ("softmax",), _SRC_STD, with_perm,
          check_softmax_perm),
    Claim("softmax.order_preserving",
          "z_i < z_j implies a_i <= a_j (within budgets)",
          r"z_i < z_j \Rightarrow \hat a_i \le \hat a_j", ("softmax",), _SRC_STD, logits(),
          check_softmax_order),
    Claim("softmax.masked_entries",
          "-inf logits get exactly 0; the rest is the softmax of the unmasked entries",
          r"z_j = -\infty \Rightarrow \hat a_j = 0", ("softmax",), _SRC_STD,
          lambda dt, inp: with_mask(dt, inp), check_softmax_masked,
          ("at least one finite logit per row",)),
    Claim("softmax.finite_for_huge_logits",
          "softmax is finite for finite logits of any magnitude (no overflow, no 0/0)",
          r"z \in \mathbb{F}^n \Rightarrow \hat a \in \mathbb{F}^n", ("softmax",), _SRC_BHH,
          logits(regimes=("overflow", "underflow", "offset")), check_softmax_finite),
    Claim("softmax_vjp.matches_reference",
          "the backward pass v^T J = a * (v - <v, a>) matches the reference within its budget",
          r"v^\top J = a \odot (v - \langle v, a\rangle)", ("softmax_vjp",),
          _SRC_STD + "; J = diag(a) - a a^T", cotangents, check_vjp_ref),
    Claim("softmax_vjp.sums_to_zero",
          "the softmax VJP annihilates constants: its output sums to zero (within budgets)",
          r"\sum_j (v^\top J)_j = 0", ("softmax_vjp",), _SRC_STD, cotangents, check_vjp_sum),
    # ---------------------------------------------------------------- log-sum-exp
    Claim("logsumexp.matches_reference",
          "log-sum-exp matches the reference within 2u(μ|y| + n + μ + (1+μ) ln n)",
          r"|\hat y - y| \le 2u(\mu|y| + n + \mu + (1+\mu)\ln n)", ("logsumexp",),
          _SRC_BHH + ", Thms 3.2 and 4.2", logits(vocab=True, masks=True, full_masks=True),
          check_lse_ref),
    Claim("logsumexp.bounds", "max z <= LSE(z) <= max z + log n (within budgets)",
          r"\max_i z_i \le \mathrm{LSE}(z) \le \max_i z_i + \ln n", ("logsumexp",),
          _SRC_BHH + ", (4.2)", logits(), check_lse_bounds),
    Claim("logsumexp.shift", "LSE(z + c) = LSE(z) + c for exactly representable shifts c",
          r"\mathrm{LSE}(z + c\mathbf{1}) = \mathrm{LSE}(z) + c", ("logsumexp",), _SRC_BHH,
          with_shift, check_lse_shift, ("z + c exact in the dtype and finite",)),
    Claim("logsumexp.masked_entries",
          "-inf entries are ignored, and an all -inf row gives -inf",
          r"\mathrm{LSE}(z) = \mathrm{LSE}(z_{z_j > -\infty})", ("logsumexp",), _SRC_STD,
          lambda dt, inp: with_mask(dt, inp, full=True), check_lse_masked),
    Claim("logsumexp.infinite_logits",
          "a row holding +inf logits has LSE = +inf (also with two or more, or -inf beside them)",
          r"\exists j: z_j = +\infty \Rightarrow \mathrm{LSE}(z) = +\infty", ("logsumexp",),
          "limit of the definition; scipy, torch and jax agree", with_pos_inf,
          check_lse_pos_inf),
    Claim("logsumexp.finite_for_huge_logits", "log-sum-exp never overflows for finite logits",
          r"z \in \mathbb{F}^n \Rightarrow \widehat{\mathrm{LSE}}(z) \in \mathbb{F}",
          ("logsumexp",), _SRC_BHH, logits(regimes=("overflow", "underflow", "offset")),
          check_lse_finite),
    Claim("logsumexp.accurate",
          "log-sum-exp is accurate relative to its conditioning: |ŷ - y| <= 2u(2n + 2μ + 2)"
          "(sum_i |z_i| a_i + |y|) + 2nΦ0 (met by log1p-refined algorithms)",
          r"|\hat y - y| \le 2u(2n+2\mu+2)\left(\sum_i |z_i| a_i + |y|\right) + 2n\Phi_0",
          ("logsumexp",), _SRC_BHH + ", Alg. 4.1; docs/tolerances.md",
          focused(masks=True, full_masks=True), check_lse_accurate, level="accurate"),
    # ---------------------------------------------------------------- log-softmax
    Claim("log_softmax.matches_reference",
          "log-softmax matches the reference within 2u(2|l_j| + n + μ + (1+μ) ln n)",
          r"|\hat\ell_j - \ell_j| \le 2u(2|\ell_j| + n + \mu + (1+\mu)\ln n)", ("log_softmax",),
          _SRC_BHH + "; docs/tolerances.md", logits(vocab=True), check_ls_ref),
    Claim("log_softmax.nonpositive", "log-softmax is <= 0 (within its budget)",
          r"\hat\ell_j \le \mathrm{tol}_j", ("log_softmax",), _SRC_STD, logits(),
          check_ls_nonpositive),
    Claim("log_softmax.finite",
          "log-softmax is finite for finite logits wherever the exact value is representable "
          "(no -inf from an underflowed probability)",
          r"\ell_j \in \mathbb{F} \Rightarrow \hat\ell_j \in \mathbb{F}", ("log_softmax",),
          _SRC_STD, logits(regimes=("dominant", "wide", "underflow", "overflow")),
          check_ls_finite),
    Claim("log_softmax.equals_z_minus_lse", "log_softmax(z) = z - LSE(z) (within budgets)",
          r"\ell = z - \mathrm{LSE}(z)", ("log_softmax", "logsumexp"), _SRC_STD, logits(),
          check_ls_lse),
    Claim("log_softmax.exp_is_softmax", "exp(log_softmax(z)) = softmax(z) (within budgets)",
          r"e^{\ell_j} = a_j", ("log_softmax", "softmax"), _SRC_STD, logits(), check_ls_exp),
    Claim("log_softmax.masked_entries",
          "-inf logits give -inf; the rest is the log-softmax of the unmasked entries",
          r"z_j = -\infty \Rightarrow \hat\ell_j = -\infty", ("log_softmax",), _SRC_STD,
          lambda dt, inp: with_mask(dt, inp), check_ls_masked,
          ("at least one finite logit per row",)),
    Claim("log_softmax.accurate",
          "log-softmax is accurate relative to its conditioning: |l̂_j - l_j| <= 2u(2n + 2μ + 2)"
          "(P_j + |l_j|) + 2nΦ0, P_j = |z_j|(1 - a_j) + sum_{i != j} |z_i| a_i",
          r"|\hat\ell_j - \ell_j| \le 2u(2n+2\mu+2)(P_j + |\ell_j|) + 2n\Phi_0",
          ("log_softmax",), _SRC_BHH + ", Alg. 4.1; docs/tolerances.md", focused(),
          check_ls_accurate, level="accurate"),
    # ---------------------------------------------------------------- cross-entropy
    Claim("cross_entropy.matches_reference",
          "C = -sum_j n_j log softmax(z)_j matches the reference for any n >= 0 within "
          "2u((n+2) sum |n_j||l_j| + N1 (n + μ + (1+μ) ln n))",
          r"|\hat C - C| \le 2u\left((n+2)\sum_j |n_j||\ell_j| + \|n\|_1(n + \mu + (1+\mu)\ln n)"
          r"\right)", ("cross_entropy",), "seed section 1; docs/tolerances.md",
          targets(vocab=True, masks=False),
          lambda env, ex: check_ce_ref(env, ex), (_PROB,)),
    Claim("cross_entropy.lse_form", "C = sum(n) LSE(z) - sum_j n_j z_j (within budgets)",
          r"C = S_n\,\mathrm{LSE}(z) - \langle n, z\rangle", ("cross_entropy", "logsumexp"),
          _SRC_STD, targets(masks=False), check_ce_lse, (_PROB,)),
    Claim("cross_entropy.gibbs",
          "Gibbs' inequality: C >= H(n) >= 0 for probability targets "
          "(C >= H(n) + S_n log S_n for any n >= 0)",
          r"C(n, z) \ge H(n) \ge 0", ("cross_entropy",), "Gibbs' inequality",
          targets(normalised=True, masks=False), check_ce_gibbs, ("targets sum to one",)),
    Claim("cross_entropy.zero_targets_ignored",
          "entries with n_j = 0 contribute nothing, even where a_j underflows",
          r"n_j = 0 \Rightarrow \text{no contribution (}0\log 0 = 0\text{)}", ("cross_entropy",),
          _SRC_STD, targets(kind="zero_where_underflow", masks=False),
          lambda env, ex: check_ce_ref(env, ex), (_PROB,)),
    Claim("cross_entropy.masked_logits",
          "entries with z_j = -inf (masks) and n_j = 0 contribute nothing: 0 log 0 = 0 "
          "(the rest within the stable budget)",
          r"z_j = -\infty,\ n_j = 0 \Rightarrow \text{no contribution}", ("cross_entropy",),
          "the limit n log n -> 0; PyTorch, JAX and optax compute 0 * (-inf) = NaN instead",
          lambda dt, inp: with_mask(dt, inp).flatmap(
              lambda ex: zero_targets_at_masks(dt, ex)),
          check_ce_masked, ("targets n >= 0, zero where z = -inf",), kind="convention",
          convention="0 log 0 = 0: a zero target at a masked logit contributes nothing",
          alternative="0 * (-inf) = NaN: the zero target times the masked logit's "
                      "log-probability"),
    Claim("cross_entropy.finite",
          "cross-entropy is finite for finite logits wherever the exact value is representable",
          r"C \in \mathbb{F} \Rightarrow \hat C \in \mathbb{F}", ("cross_entropy",), _SRC_STD,
          targets(masks=False), check_ce_finite, (_PROB,)),
    Claim("cross_entropy.accurate",
          "cross-entropy computed from accurate log-softmax values: sum_j |n_j| tol_acc(l_j) "
          "+ n u sum_j |n_j l_j|",
          r"|\hat C - C| \le \sum_j |n_j|\,\mathrm{tol}^{acc}_j + 2nu\sum_j|n_j\ell_j|",
          ("cross_entropy",), "docs/tolerances.md", focused_targets,
          lambda env, ex: check_ce_ref(env, ex, accurate=True), (_PROB,), level="accurate"),
    # ---------------------------------------------------------------- gradient
    Claim("cross_entropy_grad.normalised_targets",
          "dC/dz = a - n when the targets sum to one",
          r"\sum_j n_j = 1 \Rightarrow \partial C/\partial z = a - n", ("cross_entropy_grad",),
          "seed section 2.2", targets(normalised=True), check_grad_ref,
          ("targets sum to one",)),
    Claim("cross_entropy_grad.any_targets",
          "dC/dz = a sum(n) - n for any targets n >= 0 (a - n is wrong when sum(n) != 1)",
          r"\partial C/\partial z = a\,S_n - n", ("cross_entropy_grad",),
          "derived (seed 2.2 without its precondition)", targets(vocab=True, normalised=False),
          check_grad_ref, (_PROB,)),
    Claim("cross_entropy_grad.sums_to_zero", "the gradient sums to zero (shift invariance of C)",
          r"\sum_j \partial C/\partial z_j = 0", ("cross_entropy_grad",), _SRC_STD, targets(),
          check_grad_sum, (_PROB,)),
    Claim("cross_entropy_grad.finite_differences",
          "the gradient matches high-precision finite differences of the exact loss",
          r"\partial C/\partial z_j = \lim_{h\to 0}\frac{C(z + he_j) - C(z - he_j)}{2h}",
          ("cross_entropy_grad",), "numerical differentiation in mpmath",
          lambda dt, inp: small(dt, inp, targets=True), check_grad_fd, (_PROB,),
          examples=0.5),
    Claim("cross_entropy_grad.derivative_of_own_loss",
          "the gradient is the derivative of the target's own cross_entropy",
          r"\hat C(z+\Delta) - \hat C(z-\Delta) \approx \langle \widehat{\nabla C}, 2\Delta\rangle",
          ("cross_entropy", "cross_entropy_grad"), _SRC_STD, with_dir, check_grad_own_loss,
          (_PROB,)),
    # ---------------------------------------------------------------- dense layer
    Claim("dense_grads.dW", "dW = sum over rows of (a sum(n) - n) x^T",
          r"\partial L/\partial W = \sum_b \delta_b x_b^\top", ("dense_grads",),
          "seed section 2.3, corrected", dense, check_dense(0)),
    Claim("dense_grads.db", "db = sum over rows of (a sum(n) - n)",
          r"\partial L/\partial b = \sum_b \delta_b", ("dense_grads",),
          "seed section 2.3, corrected", dense, check_dense(1)),
    Claim("dense_grads.empty_batch",
          "a batch of no rows gives dW = 0 and db = 0 (empty sums) and an empty dx",
          r"B = 0 \Rightarrow \partial L/\partial W = 0,\ \partial L/\partial b = 0",
          ("dense_grads",), "empty sum; torch and jax agree", empty_batch, check_dense_empty,
          kind="contract", examples=0.1),
    Claim("dense_grads.dx", "dx = (a sum(n) - n) W for each row",
          r"\partial L/\partial x_b = W^\top \delta_b", ("dense_grads",),
          "seed section 2.3, corrected", dense, check_dense(2)),
]


_SRC_TORCH = "PyTorch's CrossEntropyLoss semantics, checked against torch itself"
_LOSS_DEF = ("ℓ_i = -Σ_j t_ij log softmax(z_i)_j with effective targets t_i = (1-ε) w_y e_y + "
             "(ε/K) w (class index y; none for an ignored row) or w ⊙ ((1-ε) q_i + ε/K) "
             "(probabilities q_i); reductions none, sum, and mean = sum / D (D = Σ w_y over rows "
             "not ignored, or B for probabilities)")
_FUSED = ("linear_cross_entropy",)

_LOSS_API: list[Claim] = [
    Claim("cross_entropy_loss.matches_reference",
          "the loss (class indices or probabilities, weights, label smoothing, ignore_index, "
          "each reduction) matches the exact loss within the stable budget: " + _LOSS_DEF,
          r"|\hat L - L| \le \mathrm{tol}_{\mathrm{stable}}", ("cross_entropy_loss",),
          _SRC_TORCH + "; docs/tolerances.md, The loss API", loss(vocab=True),
          check_loss_ref()),
    Claim("cross_entropy_loss.accurate",
          "the loss is as accurate as accumulating in a wider format and rounding once: "
          "log-probabilities and result each rounded to the dtype",
          r"|\hat L - L| \le 2u|L| + \mathrm{tol}_{\mathrm{stable}}(u_{\mathrm{acc}})",
          ("cross_entropy_loss",), "docs/tolerances.md, The loss API", loss(vocab=True),
          check_loss_ref(accurate=True), level="accurate"),
    Claim("cross_entropy_loss.index_is_one_hot",
          "a class index y gives the same loss and gradient as the one-hot probability target e_y "
          "(with the same weights and smoothing; reductions none and sum)",
          r"L(z, y) = L(z, e_y)", ("cross_entropy_loss",), _SRC_TORCH,
          loss(forms=("index",), ignore=("none",), reductions=("none", "sum")),
          check_index_is_one_hot, requires=("index", "probability")),
    Claim("cross_entropy_loss.smoothing_is_mixed_target",
          "label smoothing ε is the plain loss of the mixed target (1 - ε) q + ε/K, the uniform "
          "part over all K classes",
          r"L_\varepsilon(z, q) = L_0(z, (1-\varepsilon) q + \varepsilon/K)",
          ("cross_entropy_loss",), "Szegedy et al. (2016); " + _SRC_TORCH,
          loss(need=("label_smoothing",), ignore=("none",), reductions=("none", "sum")),
          check_smoothing_is_mixed, requires=("probability", "label_smoothing")),
    Claim("cross_entropy_loss.ignored_rows_removable",
          "an ignored row contributes nothing: its loss (reduction none) and gradient are exactly "
          "0, and dropping it leaves the sum and the mean unchanged",
          r"y_i = \text{ignore} \Rightarrow L(z, y) = L(z_{-i}, y_{-i})", ("cross_entropy_loss",),
          _SRC_TORCH, loss(forms=("index",), need=("ignore_index",), ignore=("some",)),
          check_ignored_rows_removable, requires=("ignore_index",)),
    Claim("cross_entropy_loss.mean_is_sum_over_denominator",
          "the mean is the sum divided by D = Σ w_y over rows not ignored (class indices) or by "
          "B (probabilities), for the loss and its gradient",
          r"L_{\mathrm{mean}} = L_{\mathrm{sum}} / D", ("cross_entropy_loss",), _SRC_TORCH,
          loss(reductions=("mean",), ignore=("some", "none")),  # every row ignored: D = 0
          check_mean_is_sum_over_d, requires=("mean", "sum")),
    Claim("cross_entropy_loss.weight_scale_invariant",
          "scaling every class weight by the same factor leaves the mean unchanged",
          r"L_{\mathrm{mean}}(z, y; c\,w) = L_{\mathrm{mean}}(z, y; w)", ("cross_entropy_loss",),
          _SRC_TORCH, loss_scaled, check_weight_scale, requires=("weight", "mean")),
    Claim("cross_entropy_loss.mean_of_nothing",
          "every row ignored: the mean is 0/0; PyTorch's convention is a NaN loss with a zero "
          "gradient",
          r"D = 0 \Rightarrow L_{\mathrm{mean}} = 0/0", ("cross_entropy_loss",),
          "convention (PyTorch)", loss(forms=("index",), need=("ignore_index",),
                                       ignore=("all",), reductions=("mean",)),
          check_mean_of_nothing, kind="convention", requires=("ignore_index", "mean"),
          alternative="a loss of 0 (the empty mean taken as 0), or a NaN gradient (autograd's "
                      "0 * (1/0))", examples=0.2),
    Claim("cross_entropy_loss_grad.matches_reference",
          "the gradient of the loss is (g S_i - t_i) / D per row (D = 1 unless the mean), 0 for an "
          "ignored row, within the stable budget",
          r"\partial L/\partial z_i = (g_i S_i - t_i)/D", ("cross_entropy_loss_grad",),
          "seed section 2.2, weighted, smoothed and masked", loss(), check_loss_grad_ref()),
    Claim("cross_entropy_loss_grad.accurate",
          "the gradient is as accurate as computing in a wider format and rounding once",
          r"|\hat\delta_j - \delta_j| \le u|\delta_j| + \mathrm{tol}(u_{\mathrm{acc}})",
          ("cross_entropy_loss_grad",), "docs/tolerances.md, The loss API", loss(),
          check_loss_grad_ref(accurate=True), level="accurate"),
    Claim("linear_cross_entropy.loss",
          "the fused loss of z = x W^T + b matches the exact loss of the exact logits, within "
          "the loss budget plus the effect of the logits' own rounding",
          r"|\hat L - L(xW^\top + b)| \le \mathrm{tol}", _FUSED, _SRC_TORCH, fused(),
          check_fused_ref(("loss",))),
    Claim("linear_cross_entropy.dW", "dW = Σ_b δ_b x_b^T with δ_b = ∂L/∂z_b",
          r"\partial L/\partial W = \sum_b \delta_b x_b^\top", _FUSED,
          "seed section 2.3, corrected", fused(), check_fused_ref(("dW",))),
    Claim("linear_cross_entropy.db", "db = Σ_b δ_b",
          r"\partial L/\partial b = \sum_b \delta_b", _FUSED, "seed section 2.3, corrected",
          fused(), check_fused_ref(("db",))),
    Claim("linear_cross_entropy.dx", "dx_b = W^T δ_b",
          r"\partial L/\partial x_b = W^\top \delta_b", _FUSED, "seed section 2.3, corrected",
          fused(), check_fused_ref(("dx",))),
    Claim("linear_cross_entropy.accurate",
          "the fused loss and gradients are as accurate as accumulating in a wider format "
          "(logits, probabilities, dW across the batch) and rounding each output once",
          r"|\hat v - v| \le u|v| + \mathrm{tol}(u_{\mathrm{acc}})", _FUSED,
          "docs/tolerances.md, The loss API", fused(long_batch=512),
          check_fused_ref(("loss", "dx", "dW", "db"), accurate=True), level="accurate"),
    Claim("linear_cross_entropy.equals_linear_then_loss",
          "the fused loss equals cross_entropy_loss of the logits x W^T + b (a chunked path "
          "equals the unchunked one)",
          r"\mathrm{LCE}(x, W, b, y) = L(xW^\top + b, y)", (*_FUSED, "cross_entropy_loss"),
          _SRC_TORCH, fused(), check_fused_is_linear_then_loss),
    Claim("linear_cross_entropy.mean_of_nothing",
          "every row ignored: the fused mean is 0/0; PyTorch's convention (its reference path) is "
          "a NaN loss with zero dx, dW and db",
          r"D = 0 \Rightarrow L_{\mathrm{mean}} = 0/0", _FUSED, "convention (PyTorch)",
          fused(forms=("index",), need=("ignore_index",), ignore=("all",), reductions=("mean",)),
          check_fused_mean_of_nothing, kind="convention", requires=("ignore_index", "mean"),
          alternative="a loss of 0 (the empty mean taken as 0), or NaN gradients (0 * (1/0))",
          examples=0.2),
    Claim("linear_cross_entropy.finite_differences",
          "the fused gradients dx, dW, db are the derivatives of its loss: they match central "
          "differences of the exact loss in mpmath",
          r"\nabla_{x,W,b} L = \lim_{h\to 0} (L(\theta + h e) - L(\theta - h e))/2h", _FUSED,
          "numerical differentiation in mpmath", fused(small_=True),
          check_fused_fd, examples=0.3),
    Claim("dense_grads.finite_differences",
          "the dense layer's dW, db, dx are the derivatives of L = Σ_b C(x_b W^T + b, n_b): they "
          "match central differences of the exact loss in mpmath (not the formula)",
          r"\nabla_{W,b,x} L = \text{central differences of } L", ("dense_grads",),
          "numerical differentiation in mpmath", math_dense, check_dense_own_fd, examples=0.3),
]


def _valid_inputs(fname: str) -> Callable[[DType, Inputs], st.SearchStrategy[Example]]:
    """The inputs of every other claim on ``fname`` (as its first function: a claim on two
    functions may call the second on derived inputs): whatever the specification judges is a
    valid input (read when a run starts, so that claims added later count too). The plain
    inputs of ``fname`` come first, where Hypothesis shrinks to."""

    def strategy(dt: DType, inp: Inputs) -> st.SearchStrategy[Example]:
        return st.one_of(inputs_for(fname)(dt, inp),
                         *(c.strategy(dt, inp) for c in CLAIMS
                           if c.needs[:1] == (fname,) and c.id != returns_claim(fname)))

    return strategy


def _contract_claims() -> list[Claim]:
    out = []
    for fname in ("softmax", "log_softmax", "logsumexp", "softmax_vjp", "cross_entropy",
                  "cross_entropy_grad", "dense_grads", "cross_entropy_loss",
                  "cross_entropy_loss_grad", "linear_cross_entropy"):
        strat = inputs_for(fname)
        out.append(Claim(returns_claim(fname),
                         f"{fname} returns, raising no exception, on every valid input (the "
                         f"inputs of every claim on {fname}); the other claims skip an input "
                         f"it raises on",
                         r"\text{returns on every valid input}", (fname,), _SRC_CONTRACT,
                         _valid_inputs(fname), contract_returns(fname), kind="contract",
                         examples=0.5))
        out.append(Claim(f"{fname}.no_mutation", f"{fname} leaves its inputs unchanged",
                         r"\text{inputs unchanged}", (fname,), _SRC_CONTRACT, strat,
                         contract_no_mutation(fname), kind="contract", examples=0.25))
        out.append(Claim(f"{fname}.shape_and_dtype",
                         f"{fname} returns the specified shape, in the input's dtype",
                         r"\text{shape and dtype as specified}", (fname,), _SRC_CONTRACT, strat,
                         contract_shape_dtype(fname), kind="contract", examples=0.25))
        if fname in ("softmax", "log_softmax", "logsumexp", "softmax_vjp", "cross_entropy",
                     "cross_entropy_grad"):
            batched = logits(batches=True) if fname in ("softmax", "log_softmax",
                                                        "logsumexp") else strat
            out.append(Claim(f"{fname}.axis_and_batch",
                             f"{fname} honours axis: batched along any axis equals row by "
                             f"row, and a default axis is the last one",
                             r"f(Z, \mathrm{axis}=k)_{\dots} = f(Z_{\dots,:,\dots})", (fname,),
                             _SRC_CONTRACT, batched, contract_axis(fname), kind="contract",
                             examples=0.5))
        # Rows of many distinct values, where summation order changes the last bits.
        varied = logits(regimes=("normal", "wide", "dominant")) if fname in (
            "softmax", "log_softmax", "logsumexp") else strat
        out.append(Claim(f"{fname}.deterministic",
                         f"{fname} gives bitwise identical results for identical inputs",
                         r"f(z) = f(z)", (fname,), _SRC_CONTRACT, varied,
                         contract_deterministic(fname), kind="contract", examples=1.0))
    return out


_MATH: list[Claim] = [
    Claim("softmax.jacobian_formula",
          "the Jacobian of softmax is diag(a) - a a^T",
          r"\partial a_i/\partial z_j = a_i(\delta_{ij} - a_j)", (), _SRC_STD, math_rows,
          check_math_jacobian, kind="mathematics", examples=0.2),
    Claim("dense_grads.formula_matches_fd",
          "the dense-layer formulas dW = sum δ x^T, db = sum δ, dx = δ W, δ = a sum(n) - n, "
          "match numerical differentiation of L = sum of C(x W^T + b, n)",
          r"\nabla_{W,b,x} L = (\textstyle\sum_b \delta_b x_b^\top, \sum_b \delta_b, "
          r"W^\top\delta_b)", (), "seed section 2.3, corrected", math_dense, check_dense_fd,
          kind="mathematics", examples=0.2),
    Claim("seed.2_1_jacobian_diagonal",
          "seed 2.1: da/dZ = a(1 - a), read as the diagonal of the Jacobian",
          r"\partial a_i/\partial z_i = a_i(1 - a_i)", (), "seed section 2.1", math_rows,
          check_seed("2_1_diagonal"), kind="mathematics", examples=0.2),
    Claim("seed.2_1_chain_rule",
          "seed 2.1: da/dZ = a(1 - a), used as the derivative of softmax in the chain rule",
          r"v^\top \frac{\partial a}{\partial z} = v \odot a(1 - a)", (), "seed section 2.1",
          math_rows, check_seed("2_1_chain"), kind="mathematics", expect="refuted",
          correct="da_i/dz_j = a_i(δ_ij - a_j): the off-diagonal terms -a_i a_j are missing; "
                  "the chain rule needs the full Jacobian, v^T J = a (v - <v, a>)",
          examples=0.2),
    Claim("seed.2_2_dC_da",
          "seed 2.2: dC/da = a - n",
          r"\partial C/\partial a_i = a_i - n_i", (), "seed section 2.2", math_rows,
          check_seed("2_2_dC_da"), kind="mathematics", expect="refuted",
          correct="dC/da_i = -n_i / a_i; a - n is dC/dz, the derivative with respect to the "
                  "logits, and only when sum(n) = 1", examples=0.2),
    Claim("seed.2_2_dC_dz_normalised",
          "seed 2.2 (as the derivative with respect to the logits): dC/dz = a - n when "
          "sum(n) = 1",
          r"\textstyle\sum_j n_j = 1 \Rightarrow \partial C/\partial z = a - n", (),
          "seed section 2.2", math_rows, check_seed("2_2_normalised"), ("targets sum to one",),
          kind="mathematics", examples=0.2),
    Claim("seed.2_2_dC_dz_unnormalised",
          "seed 2.2 without its precondition: dC/dz = a - n for any targets n >= 0",
          r"\partial C/\partial z = a - n", (), "seed section 2.2", math_rows,
          check_seed("2_2_unnormalised"), kind="mathematics", expect="refuted",
          correct="dC/dz = a sum(n) - n; it reduces to a - n only when sum(n) = 1",
          examples=0.2),
    Claim("seed.2_3_weight_gradient",
          "seed 2.3 as written, with both of its errors: dC/dw^(L) = (a - n) a(1 - a) w^(L-1)",
          r"\partial C/\partial W^{(L)} = (a - n)\,a(1-a)\,w^{(L-1)}", (), "seed section 2.3",
          two_layer, check_seed_weights("both"), kind="mathematics", expect="refuted",
          correct="dC/dW^(L) = (a sum(n) - n) (a^(L-1))^T: (a - n) already is dC/dz, so the "
                  "factor a(1 - a) counts the activation derivative twice, and dz/dW is the "
                  "previous layer's activation a^(L-1), not its weights w^(L-1)", examples=0.2),
    Claim("seed.2_3_extra_factor",
          "seed 2.3's first error alone (its w^(L-1) corrected to a^(L-1)): "
          "dC/dw^(L) = (a - n) a(1 - a) a^(L-1)",
          r"\partial C/\partial W^{(L)} = (a - n)\,a(1-a)\,a^{(L-1)}", (), "seed section 2.3",
          two_layer, check_seed_weights("factor_only"), kind="mathematics", expect="refuted",
          correct="dC/dW^(L) = (a - n) (a^(L-1))^T when sum(n) = 1: (a - n) is already dC/dz, "
                  "the derivative through softmax (seed 2.2), so the factor a(1 - a) counts the "
                  "activation's derivative a second time", examples=0.2),
    Claim("seed.2_3_weight_for_activation",
          "seed 2.3's second error alone (its factor a(1 - a) removed): "
          "dC/dw^(L) = (a - n) w^(L-1)",
          r"\partial C/\partial W^{(L)} = (a - n)\,w^{(L-1)}", (), "seed section 2.3",
          two_layer, check_seed_weights("weight_only"), kind="mathematics", expect="refuted",
          correct="dC/dW^(L) = (a - n) (a^(L-1))^T when sum(n) = 1: z^(L) = w^(L) a^(L-1) + "
                  "b^(L), so dz^(L)/dw^(L) is the previous layer's activation a^(L-1), not its "
                  "weight w^(L-1)", examples=0.2),
    Claim("seed.class_sigmoid_mse",
          "the class's chain rule for a sigmoid output with C = sum (a - y)^2: "
          "dC/dW = 2(a - y) a(1 - a) a^(L-1)",
          r"\partial C/\partial W = 2(a - y)\,\sigma'(z)\,a^{(L-1)}", (),
          "seed section 2 (the class's sigmoid network)", two_layer, check_sigmoid_mse,
          kind="mathematics", examples=0.2),
]

#: The whole specification, in catalogue order.
CLAIMS: tuple[Claim, ...] = tuple(_NUMERIC + _LOSS_API + _contract_claims() + _MATH)

_BY_ID = {c.id: c for c in CLAIMS}
assert len(_BY_ID) == len(CLAIMS), "claim ids must be unique"


def get_claim(claim_id: str) -> Claim:
    return _BY_ID[claim_id]


def select(pattern: str | None = None, *, level: str = "stable",
           kinds: Sequence[str] = TARGET_KINDS) -> list[Claim]:
    """Claims matching a glob-like pattern (comma-separated; ``*`` wildcards; a bare prefix
    such as ``softmax`` selects ``softmax.*``), at or below the given level."""
    import fnmatch

    levels = ("stable",) if level == "stable" else ("stable", "accurate")
    chosen = [c for c in CLAIMS if c.level in levels and c.kind in kinds]
    if not pattern:
        return chosen
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    out = []
    for c in chosen:
        for p in pats:
            if fnmatch.fnmatchcase(c.id, p) or c.id == p or c.id.startswith(p + "."):
                out.append(c)
                break
    return out
