"""The engine: searching for counterexamples with Hypothesis, supervising the worker processes the
implementation under test runs in, scheduling jobs on an executor, and the result records."""
