"""The pytest plugin: ``pytest --softmax-oracle TARGET`` runs the claims as test items.

Item ids read like the specification: ``softmax.sums_to_one[float32]``. The plugin is loaded on
every pytest run (pytest11 entry point), so this module imports nothing heavy until asked.
"""

from __future__ import annotations

from typing import Any

import pytest

from softmax_oracle.engine.profiles import LEVELS, PROFILES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("softmax-oracle", "check a softmax implementation")
    group.addoption("--softmax-oracle", metavar="TARGET", default=None,
                    help="run the softmax-oracle claims against TARGET (a built-in name, "
                         "package.module[:attr] or path/to/file.py)")
    group.addoption("--softmax-oracle-dtype", metavar="DTYPES", default="float64,float32",
                    help="comma-separated dtypes (default: float64,float32)")
    group.addoption("--softmax-oracle-level", choices=LEVELS, default="stable")
    group.addoption("--softmax-oracle-profile", default="ci",
                    choices=tuple(PROFILES),
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
        from softmax_oracle.engine.jobs import ClaimJob, estimate_cost
        from softmax_oracle.engine.search import applicable

        info = self.state["info"]
        reason = applicable(self.claim, info)
        if not reason and not info.supports(self.dtype.name):
            reason = f"the target does not support {self.dtype.name}"
        if reason:
            pytest.skip(f"not applicable: {reason}")
        opts = self.state["options"]
        job = ClaimJob(**self.state["where"], target=opts["name"], target_name=opts["name"],
                       claim_id=self.claim.id, dtype=self.dtype.name, level=opts["level"],
                       profile=PROFILES[opts["profile"]], seed=opts["seed"],
                       flushes=info.flushes.get(self.dtype.name, False),
                       cost=estimate_cost(self.claim, opts["name"]))
        (result,) = self.state["scheduler"].run([job])
        self.user_properties.append(("max_ratio", result.max_ratio))
        self.user_properties.append(("verdict", result.verdict))
        if not result.as_expected:
            raise ClaimFailure(result)
        if result.verdict == "unjudged":  # the exception fails <function>.returns_on_valid_input
            pytest.skip(f"unjudged: {result.reason}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailure):
            from softmax_oracle.report.text import format_refutation

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
        from softmax_oracle.spec.claims import TARGET_KINDS, select

        opts = self.state["options"]
        info = self.state["info"]
        kinds = TARGET_KINDS + (("mathematics",) if info.is_reference else ())
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

    from softmax_oracle.engine.jobs import Describe, here
    from softmax_oracle.engine.profiles import choose_seed
    from softmax_oracle.engine.scheduler import Scheduler
    from softmax_oracle.oracle.dtypes import DTypeError, parse_dtypes

    try:
        dtypes = parse_dtypes(config.getoption("--softmax-oracle-dtype"))
    except DTypeError as e:
        raise pytest.UsageError(f"--softmax-oracle-dtype: {e}") from None
    profile = config.getoption("--softmax-oracle-profile")
    seed = choose_seed(PROFILES[profile], config.getoption("--softmax-oracle-seed"))
    # The target is loaded and run only in a supervised worker process, kept for the session:
    # a crash or hang of the target fails its item, never the pytest session.
    scheduler = Scheduler("local", 1)
    config.add_cleanup(scheduler.close)
    where = here()
    (info,) = scheduler.run([Describe(**where, target=spec,
                                      dtypes=tuple(d.name for d in dtypes))])
    if info.error:
        raise pytest.UsageError(f"--softmax-oracle: {info.error}")
    state = {"info": info, "scheduler": scheduler, "where": where, "options": {
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
