"""The oracle: dtypes, certified mpmath references, error budgets and the comparison of an output
with its reference. Nothing here calls the implementation under test."""
