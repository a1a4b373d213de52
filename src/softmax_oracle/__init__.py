"""softmax-oracle: does your softmax, log-softmax, log-sum-exp, cross-entropy and backprop code
get the mathematics right, and the floating point?

>>> import softmax_oracle
>>> report = softmax_oracle.check("numpy", dtypes=["float32"], profile="quick")  # doctest: +SKIP
>>> softmax_oracle.assert_conforms("my_package.my_softmax")                      # doctest: +SKIP
"""

from __future__ import annotations

from softmax_oracle._api import ConformanceError, assert_conforms, check
from softmax_oracle.engine.results import SCHEMA_VERSION, CheckReport, ClaimResult, Counterexample
from softmax_oracle.oracle.compare import Refuted
from softmax_oracle.spec.claims import CLAIMS, Claim, get_claim
from softmax_oracle.targets import Target, TargetError, load_target

__version__ = "0.1.0"

__all__ = [
    "CLAIMS",
    "SCHEMA_VERSION",
    "CheckReport",
    "Claim",
    "ClaimResult",
    "ConformanceError",
    "Counterexample",
    "Refuted",
    "Target",
    "TargetError",
    "__version__",
    "assert_conforms",
    "check",
    "get_claim",
    "load_target",
]
