"""The command line: ``softmax-oracle check | replay | claims | targets | report | diff``.

Exit codes: 0 every applicable claim holds (as specified), 1 a claim is refuted, 2 a usage error
or a target that cannot be loaded.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from softmax_oracle.engine.check import RunInterrupted, run_check
from softmax_oracle.engine.jobs import CallFailed, CallJob, here
from softmax_oracle.engine.profiles import LEVELS, PROFILES
from softmax_oracle.engine.replay import replay_saved
from softmax_oracle.engine.results import CheckReport, ClaimResult, Counterexample, format_value
from softmax_oracle.engine.saved import ReplayError, load_saved
from softmax_oracle.engine.scheduler import Interrupted, Scheduler
from softmax_oracle.oracle.dtypes import DTypeError, parse_dtypes
from softmax_oracle.report.diff import DiffError, diff_files
from softmax_oracle.report.files import (
    OutputPathError,
    check_writable_dir,
    check_writable_file,
    write_atomic,
)
from softmax_oracle.report.run import run_report, save_report
from softmax_oracle.report.text import format_refutation
from softmax_oracle.report.views import (
    DEFAULT_TARGETS,
    count_phrases,
    counts,
    note,
    qualified,
    skip_groups,
    skipped_names,
    summary_text,
)
from softmax_oracle.spec.catalogue import render_markdown
from softmax_oracle.spec.claims import CLAIMS, KINDS, select
from softmax_oracle.targets import BUILTIN, PACKAGE, TargetError

__all__ = ["format_refutation", "main"]  # format_refutation: kept importable from here

_TARGET_HELP = ("a built-in target (" + ", ".join(BUILTIN) + "), a module "
                "(package.module or package.module:attribute) or a file (path/to/impl.py)")


class _Progress:
    """A one-line progress display on a terminal; silent otherwise (CI, pipes)."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.start = time.perf_counter()
        self.refuted = 0

    def __call__(self, r: ClaimResult, done: int, total: int) -> None:
        if r.verdict == "refuted":
            self.refuted += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (total - done) if done else 0
        msg = (f"\r[{done}/{total}] {r.dtype} {r.claim_id:<42.42} refuted so far: "
               f"{self.refuted}  ~{left:.0f} s left ")
        self.stream.write(msg)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _summary(report: CheckReport, out: TextIO, verbose: bool) -> None:
    v = report.versions
    out.write(f"softmax-oracle {v.get('softmax-oracle', '')}: target {report.target}"
              f"{' ' + report.target_version if report.target_version else ''}, level "
              f"{report.level}, profile {report.profile}, seed {report.seed}\n")
    for line in report.notes:
        out.write(f"  note: {line}\n")
    for dt in report.dtypes:
        rs = [r for r in report.results if r.dtype == dt]
        c = counts(rs)
        c["refuted"], c["expected_refuted"] = c["refuted"] + c["expected_refuted"], 0
        examples = sum(r.examples for r in rs)
        parts = count_phrases(c)
        worst = max((r for r in rs if r.verdict == "verified"), key=lambda r: r.max_ratio,
                    default=None)
        head = f" (worst error/budget among verified: {worst.max_ratio:.2g}, {worst.claim_id})" \
            if worst is not None and worst.max_ratio > 0 else ""
        out.write(f"{dt}: {', '.join(parts)}; {examples} examples{head}\n")
        if verbose:
            for r in rs:
                out.write(f"    {r.verdict:<15} {r.claim_id:<45} {r.examples:>4} ex  "
                          f"{r.max_ratio:9.3g}  {r.seconds:6.2f} s\n")
    _qualifications(report, out, verbose)
    bad = [r for r in report.results if not r.as_expected]
    for r in bad:
        out.write("\n" + format_refutation(r) + "\n")
    expected_refuted = [r for r in report.results
                        if r.expected == "refuted" and r.verdict == "refuted"]
    if expected_refuted:
        out.write(f"\n{len(expected_refuted)} seed statement(s) refuted, as the audit expects: "
                  + ", ".join(sorted({r.claim_id for r in expected_refuted})) + "\n")
    verdict = "all applicable claims hold" if report.ok else (
        f"{len(bad)} claim result(s) refuted or in error")
    out.write(f"\n{verdict} ({report.seconds:.1f} s)\n")


def _qualifications(report: CheckReport, out: TextIO, verbose: bool) -> None:
    """The conventions the target does not follow (all of them with -v), the uninformative
    results (with -v also the verified ones that rest partly on uninformative examples), and
    the examples skipped because the target raised, one exception said once."""
    convs = [r for r in report.results
             if r.verdict == "differs" or (verbose and r.verdict == "follows")]
    if convs:
        out.write("\nConventions (not bugs: which legitimate convention the target follows):\n")
        for r in convs:
            out.write(f"  {r.claim_id} [{r.dtype}]: {note(r)}\n")
            if r.shrunk is not None:
                inputs = "; ".join(f"{k} = {v}" for k, v in r.shrunk.inputs.items())
                out.write(f"    {r.shrunk.problem.splitlines()[0]}\n    Input: "
                          f"{inputs if len(inputs) < 400 else inputs[:390] + ' ...'}\n"
                          f"    Reproduce: {r.reproduce}\n")
    rest = [r for r in qualified(report.results) if r.uninformative
            and (verbose or r.verdict == "uninformative")]
    partly = sum(1 for r in qualified(report.results) if r.uninformative
                 and r.verdict != "uninformative")
    if rest:
        out.write("\nUninformative budgets (docs/tolerances.md, \"Uninformative budgets\"):\n")
        for r in rest:
            out.write(f"  {r.claim_id} [{r.dtype}], {r.verdict}: {note(r)}\n")
    if partly and not verbose:
        out.write(f"\n{partly} verified result(s) rest partly on uninformative examples "
                  f"(listed with -v)\n")
    for where, cause, rs in skip_groups(report.results):
        out.write(f"\nExamples skipped [{where}]: {cause}\n"
                  + textwrap.fill(skipped_names(rs), 96, initial_indent="  ",
                                  subsequent_indent="  ") + "\n")


def _cmd_check(args: argparse.Namespace) -> int:
    if args.json and not _output_ok(check_writable_file, args.json, "--json"):
        return 2
    try:
        dtypes = parse_dtypes(args.dtype)
    except DTypeError as e:
        print(f"softmax-oracle: error: --dtype: {e}", file=sys.stderr)
        return 2
    progress = _Progress(sys.stderr, sys.stderr.isatty() and not os.environ.get("CI")
                         and not args.quiet)
    status = 0
    try:
        report = run_check(args.target, dtypes=dtypes, level=args.level, claims=args.claim,
                           profile=args.profile, seed=args.seed, max_examples=args.max_examples,
                           timeout=args.timeout, on_result=progress, jobs=args.jobs,
                           executor=args.executor,
                           memory_limit=_memory_limit(args.memory_limit), kinds=args.kind)
    except (TargetError, ValueError) as e:
        progress.close()
        print(f"softmax-oracle: error: {_as_options(e)}", file=sys.stderr)
        return 2
    except RunInterrupted as e:
        progress.close()
        if e.report is None:
            print("softmax-oracle: interrupted", file=sys.stderr)
            return 130
        report, status = e.report, 130
    progress.close()
    _summary(report, sys.stdout, args.verbose)
    if not report.complete:
        print(f"softmax-oracle: interrupted: {len(report.results)} results written, the rest "
              f"did not finish", file=sys.stderr)
    if args.json:
        write_atomic(args.json, report.dumps() + "\n")
    return status or (0 if report.ok else 1)


def _cmd_replay(args: argparse.Namespace) -> int:
    """Check the claim of a saved input again, on exactly that input, in a worker process."""
    try:
        saved = load_saved(args.file)
    except ReplayError as e:
        print(f"softmax-oracle: error: {e}", file=sys.stderr)
        return 2
    if args.timeout <= 0 or args.timeout != args.timeout:
        print(f"softmax-oracle: error: --timeout {args.timeout}: use a number of seconds above 0",
              file=sys.stderr)
        return 2
    job = CallJob(**here(), function=replay_saved, argument=(args.file, args.target, args.timeout))
    try:
        with Scheduler("local", 1) as scheduler:
            (answer,) = scheduler.run([job])
    except Interrupted:
        print("softmax-oracle: interrupted", file=sys.stderr)
        return 130
    if isinstance(answer, str):  # the target could not be loaded or cannot take the claim
        print(f"softmax-oracle: error: {answer}", file=sys.stderr)
        return 2
    if isinstance(answer, CallFailed):  # the target crashed or hung, or the kit failed
        inputs = {k: format_value(v) for k, v in saved.example.items() if k != "regime"}
        answer = ClaimResult(saved.claim_id, args.target or saved.target, saved.dtype,
                             saved.level, "error", seed=saved.seed,
                             reason=f"the replay did not finish: {answer.why}",
                             shrunk=Counterexample(inputs, "(no verdict)", float("inf"),
                                                   saved.example["regime"], saved.path))
    if answer.verdict != "verified":
        print(format_refutation(answer))
        return 1
    print(f"Claim holds on the saved input: {answer.claim_id}   [{answer.target}, "
          f"{answer.dtype}, level {answer.level}]\n"
          f"  error/budget: {answer.max_ratio:.3g}\n"
          f"  When saved:   {_indent_lines(saved.problem or '(no problem recorded)', 16)}")
    return 0


def _indent_lines(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


def _output_ok(check: Callable[[str, str], None], path: str, option: str) -> bool:
    """Check an output path before the run; False (after saying why) if it cannot be written."""
    try:
        check(path, option)
    except OutputPathError as e:
        print(f"softmax-oracle: error: {e}", file=sys.stderr)
        return False
    return True


#: The Python API's argument names, as the command line spells them.
_OPTIONS = {"dtypes": "--dtype", "timeout": "--timeout", "max_examples": "--max-examples",
            "jobs": "--jobs", "seed": "--seed", "executor": "--executor", "kinds": "--kind"}


def _as_options(e: Exception) -> str:
    """A usage error of the Python API, said with the command line's option names."""
    text = str(e)
    name, eq, rest = text.partition("=")
    return f"{_OPTIONS[name]} {rest}" if eq and name in _OPTIONS else text


def _memory_limit(gib: float | None) -> int | None:
    return None if gib is None else int(gib * 2**30)


def _cmd_claims(args: argparse.Namespace) -> int:
    if args.markdown:
        if args.claim:
            print("softmax-oracle: error: --markdown writes the whole catalogue; leave out "
                  "--claim", file=sys.stderr)
            return 2
        print(render_markdown())
        return 0
    chosen = select(args.claim, level="accurate", kinds=KINDS) if args.claim else list(CLAIMS)
    for c in chosen:
        tags = [c.kind]
        if c.level != "stable":
            tags.append(f"level {c.level}")
        if c.expect != "holds":
            tags.append(f"expected {c.expect}")
        print(f"{c.id}  [{', '.join(tags)}]")
        print(textwrap.fill(c.statement, 96, initial_indent="    ", subsequent_indent="    "))
        if args.verbose:
            print(f"    needs: {', '.join(c.needs) or '(the oracle only)'}; source: {c.source}")
            if c.preconditions:
                print(f"    preconditions: {'; '.join(c.preconditions)}")
            if c.convention or c.alternative:
                print(f"    follows: {c.convention or '(as stated)'}; differs: "
                      f"{c.alternative or '(another convention)'}")
            print(f"    latex: {c.latex}")
    print(f"\n{len(chosen)} claims")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    width = max(map(len, BUILTIN))
    for name, (_, extra) in BUILTIN.items():
        pkg = PACKAGE[name]
        installed = importlib.util.find_spec(pkg) is not None
        version = ""
        if installed:
            try:
                version = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                version = "?"
        status = f"{pkg} {version}" if installed else (
            f"not installed: pip install 'softmax-oracle[{extra}]'")
        print(f"{name:<{width}}  {status}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        dtypes = parse_dtypes(args.dtype)
    except DTypeError as e:
        print(f"softmax-oracle: error: --dtype: {e}", file=sys.stderr)
        return 2
    if not _output_ok(check_writable_dir, args.out, "--out"):
        return 2
    status = 0
    try:
        data = run_report(args.targets or None, dtypes=[d.name for d in dtypes],
                          level=args.level, claims=args.claim, profile=args.profile,
                          seed=args.seed, jobs=args.jobs, timeout=args.timeout,
                          progress=False if args.quiet else None, executor=args.executor,
                          memory_limit=_memory_limit(args.memory_limit), kinds=args.kind)
    except ValueError as e:
        print(f"softmax-oracle: error: {_as_options(e)}", file=sys.stderr)
        return 2
    except RunInterrupted as e:
        if e.report is None:
            print("softmax-oracle: interrupted", file=sys.stderr)
            return 130
        data, status = e.report, 130
        print(f"softmax-oracle: interrupted: writing the {len(data.results)} results that "
              f"finished (marked incomplete)", file=sys.stderr)
    for skipped in data.skipped:
        if skipped.target in (args.targets or ()):
            print(f"softmax-oracle: warning: skipped target {skipped.target!r}: "
                  f"{skipped.reason}", file=sys.stderr)
    if not data.targets:
        print("softmax-oracle: error: no target could be loaded; nothing to report",
              file=sys.stderr)
        return 2
    print(summary_text(data))
    try:
        paths = save_report(data, args.out)
    except (OutputPathError, OSError) as e:  # the directory changed while the report ran
        print(f"softmax-oracle: error: the report could not be written: {e}", file=sys.stderr)
        return 2
    print(f"wrote {paths['html']}, {paths['markdown']} and {paths['json']}")
    return status


def _cmd_diff(args: argparse.Namespace) -> int:
    try:
        diff = diff_files(args.old, args.new, factor=args.factor)
    except (DiffError, ValueError) as e:
        print(f"softmax-oracle: error: {e}", file=sys.stderr)
        return 2
    print(diff.format())
    return 1 if diff.worse else 0


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", metavar="URL", default=None,
                   help="where the jobs run: 'local' (worker processes on this machine) or "
                        "'dask://HOST:PORT' (a Dask distributed scheduler; pip install "
                        "'softmax-oracle[dask]'); default: $SOFTMAX_ORACLE_EXECUTOR, else local")
    p.add_argument("--memory-limit", type=float, metavar="GIB", default=None,
                   help="resident memory a worker may use before it is killed, an error "
                        "verdict (default: 3/4 of the machine's memory shared by the jobs)")


def _kind_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", metavar="KINDS", default=None,
                   help="only claims of these kinds, comma-separated: " + ", ".join(KINDS)
                        + " (default: all that apply; e.g. 'convention' to see which "
                          "conventions a target follows)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="softmax-oracle",
        description="Check softmax, log-softmax, log-sum-exp, cross-entropy and backprop code "
                    "against an mpmath oracle with Hypothesis.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("check", help="check a target against the specification",
                       description="Search for counterexamples to every applicable claim. "
                                   "Exit 0: all hold; 1: a claim is refuted; 2: usage or "
                                   "target error.")
    c.add_argument("target", help=_TARGET_HELP)
    c.add_argument("--dtype", default="float64,float32",
                   help="comma-separated dtypes (float64, float32, float16, bfloat16); "
                        "default: %(default)s")
    c.add_argument("--level", choices=LEVELS, default="stable",
                   help="stable: shift-invariant budgets any max-shifted algorithm meets "
                        "(default); accurate: also the condition-scaled claims")
    c.add_argument("--claim", metavar="PATTERN",
                   help="only these claims: ids or globs, comma-separated (e.g. 'softmax.*')")
    _kind_option(c)
    c.add_argument("--max-examples", type=int, metavar="N",
                   help="examples per claim (default: from the profile)")
    c.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    c.add_argument("--profile", choices=tuple(PROFILES),
                   default="default", help="search effort; ci is deterministic "
                   "(default: %(default)s)")
    c.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per-call deadline: a call running longer is killed, an error verdict "
                        "with its input (default: %(default)s)")
    c.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="claims run at once, each in a supervised worker process; the results "
                        "are those of a sequential run (default: %(default)s)")
    _engine_options(c)
    c.add_argument("--json", metavar="PATH", help="also write the result records as JSON")
    c.add_argument("-v", "--verbose", action="store_true", help="one line per claim")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    c.set_defaults(func=_cmd_check)

    rp = sub.add_parser(
        "replay", help="check a refuted claim again on the input saved in FILE",
        description="Every refutation saves its whole input to an .npz file (named in its "
                    "Reproduce: line). Check the claim again on exactly that input, in a worker "
                    "process. Exit 0: it holds now; 1: refuted (or the target crashed or hung); "
                    "2: the file or the target cannot be read.")
    rp.add_argument("file", metavar="FILE", help="a saved input (.npz)")
    rp.add_argument("--target", help="check this target instead of the one the input was "
                                     "found on (e.g. the fixed version); " + _TARGET_HELP)
    rp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="per-call deadline (default: %(default)s)")
    rp.set_defaults(func=_cmd_replay)

    cl = sub.add_parser("claims", help="list the claims of the specification")
    cl.add_argument("--claim", metavar="PATTERN", help="only these claims")
    cl.add_argument("-v", "--verbose", action="store_true",
                    help="with sources, preconditions and LaTeX")
    cl.add_argument("--markdown", action="store_true",
                    help="the whole catalogue as Markdown (as in docs/claims.md)")
    cl.set_defaults(func=_cmd_claims)

    t = sub.add_parser("targets", help="list the built-in targets and whether they are installed")
    t.set_defaults(func=_cmd_targets)

    r = sub.add_parser(
        "report", help="run every claim against every target; write an HTML, Markdown and JSON "
                       "report",
        description="Run every claim against every target and dtype, in parallel processes, and "
                    "write DIR/index.html (one self-contained page), DIR/report.md and "
                    "DIR/results.json. Exit 0 once the report is written, whatever the verdicts; "
                    "2: usage error, or no target could be loaded.")
    r.add_argument("targets", nargs="*", metavar="TARGET",
                   help="the targets to report on (default: " + ", ".join(DEFAULT_TARGETS)
                        + "; a framework that is not installed is listed as skipped); "
                        + _TARGET_HELP)
    r.add_argument("--out", metavar="DIR", default="softmax-oracle-report",
                   help="output directory (default: %(default)s)")
    r.add_argument("--dtype", default="float64,float32",
                   help="comma-separated dtypes (default: %(default)s)")
    r.add_argument("--profile", choices=tuple(PROFILES),
                   default="default", help="search effort (default: %(default)s)")
    r.add_argument("--level", choices=LEVELS, default="stable",
                   help="stable (default) or accurate: also the condition-scaled claims")
    r.add_argument("--claim", metavar="PATTERN",
                   help="only these claims: ids or globs, comma-separated")
    _kind_option(r)
    r.add_argument("--seed", type=int, help="random seed, the same for every target "
                                            "(default: random, recorded in the report)")
    r.add_argument("--jobs", type=int, metavar="N",
                   help="claims run at once, each in a supervised worker process (default: the "
                        "number of CPUs)")
    r.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per-call deadline (default: %(default)s)")
    _engine_options(r)
    r.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    r.set_defaults(func=_cmd_report)

    d = sub.add_parser(
        "diff", help="what changed between two report results.json files",
        description="Compare two results.json files written by `softmax-oracle report`: claims "
                    "that became refuted or verified, accuracy that got worse, targets and claims "
                    "added or removed. Exit 0: no regression; 1: something got worse; 2: a file "
                    "cannot be read or the schema versions differ.")
    d.add_argument("old", metavar="OLD.json")
    d.add_argument("new", metavar="NEW.json")
    d.add_argument("--factor", type=float, default=2.0,
                   help="a verified claim whose worst error/budget grew by more than this factor "
                        "is a regression (default: %(default)s)")
    d.set_defaults(func=_cmd_diff)
    return p


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run the way Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("softmax-oracle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
