"""The pytest plugin: ``pytest --softmax-oracle TARGET`` runs the claims as test items.

Item ids read like the specification: ``softmax.sums_to_one[float32]``. The plugin is loaded on
every pytest run (pytest11 entry point), so this module imports nothing heavy until asked.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("softmax-oracle", "check a softmax implementation")
    group.addoption("--softmax-oracle", metavar="TARGET", default=None,
                    help="run the softmax-oracle claims against TARGET (a built-in name, "
                         "package.module[:attr] or path/to/file.py)")
    group.addoption("--softmax-oracle-dtype", metavar="DTYPES", default="float64,float32",
                    help="comma-separated dtypes (default: float64,float32)")
    group.addoption("--softmax-oracle-level", choices=("stable", "accurate"), default="stable")
    group.addoption("--softmax-oracle-profile", default="ci",
                    choices=("quick", "default", "ci", "thorough"),
                    help="search effort (default: ci, deterministic)")
    group.addoption("--softmax-oracle-seed", type=int, default=None)
    group.addoption("--softmax-oracle-claim", metavar="PATTERN", default=None,
                    help="only these claims (ids or globs, comma-separated)")


class ClaimItem(pytest.Item):
    """One claim on one dtype."""

    def __init__(self, *, claim: Any, dtype: Any, state: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.claim, self.dtype, self.state = claim, dtype, state
        self.add_marker(pytest.mark.softmax_oracle)

    def runtest(self) -> None:
        from softmax_oracle.engine.search import PROFILES, applicable, make_env, run_claim

        target = self.state["target"]
        reason = applicable(self.claim, target)
        if not reason and not target.supports(self.dtype.name):
            reason = f"the target does not support {self.dtype.name}"
        if reason:
            pytest.skip(f"not applicable: {reason}")
        envs = self.state.setdefault("envs", {})
        if self.dtype.name not in envs:
            envs[self.dtype.name] = make_env(target, self.dtype)[0]
        opts = self.state["options"]
        result = run_claim(self.claim, envs[self.dtype.name], target_name=opts["name"],
                           level=opts["level"], profile=PROFILES[opts["profile"]],
                           seed=opts["seed"])
        self.user_properties.append(("max_ratio", result.max_ratio))
        if not result.as_expected:
            raise ClaimFailure(result)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailure):
            from softmax_oracle.cli import format_refutation

            return format_refutation(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, None, str]:
        # An empty domain keeps pytest from rewriting the dots of claim ids into "::".
        return "softmax-oracle", None, ""


class ClaimFailure(Exception):
    def __init__(self, result: Any) -> None:
        super().__init__(result.claim_id)
        self.result = result


class OracleCollector(pytest.Collector):
    def __init__(self, *, state: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.state = state

    def collect(self) -> list[pytest.Item]:
        from softmax_oracle.oracle.dtypes import parse_dtypes
        from softmax_oracle.spec.claims import select

        opts = self.state["options"]
        target = self.state["target"]
        kinds = ("numerical", "contract") + (("mathematics",) if target.is_reference else ())
        items: list[pytest.Item] = []
        for dt in parse_dtypes(opts["dtypes"]):
            for claim in select(opts["claims"], level=opts["level"], kinds=kinds):
                items.append(ClaimItem.from_parent(self, name=f"{claim.id}[{dt.name}]",
                                                   claim=claim, dtype=dt, state=self.state))
        return items


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "softmax_oracle: a claim of the softmax-oracle "
                                       "specification")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    spec = config.getoption("--softmax-oracle")
    if not spec:
        return
    import random

    from softmax_oracle.targets import TargetError, load_target

    try:
        target = load_target(spec)
    except TargetError as e:
        raise pytest.UsageError(f"--softmax-oracle: {e}") from None
    profile = config.getoption("--softmax-oracle-profile")
    seed = config.getoption("--softmax-oracle-seed")
    if seed is None:
        seed = 0 if profile == "ci" else random.SystemRandom().randrange(2**31)
    state = {"target": target, "options": {
        "name": spec, "dtypes": config.getoption("--softmax-oracle-dtype"),
        "level": config.getoption("--softmax-oracle-level"), "profile": profile, "seed": seed,
        "claims": config.getoption("--softmax-oracle-claim")}}
    name = f"softmax-oracle[{spec}]"  # a node id of its own, not "::" under the session
    collector = OracleCollector.from_parent(session, name=name, nodeid=name, state=state)
    # Through the collection hooks, so that the terminal counts the items as collected.
    report = collector.ihook.pytest_make_collect_report(collector=collector)
    session.ihook.pytest_collectreport(report=report)
    if report.failed:
        raise pytest.UsageError(f"--softmax-oracle: could not collect the claims: "
                                f"{report.longreprtext}")
    items.extend(item for item in report.result if isinstance(item, pytest.Item))


def pytest_report_header(config: pytest.Config) -> str | None:
    spec = config.getoption("--softmax-oracle")
    if not spec:
        return None
    return (f"softmax-oracle: target {spec}, dtypes {config.getoption('--softmax-oracle-dtype')}"
            f", level {config.getoption('--softmax-oracle-level')}, profile "
            f"{config.getoption('--softmax-oracle-profile')}")
