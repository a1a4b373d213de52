"""The docs that are generated from the code must not go stale."""

from __future__ import annotations

from pathlib import Path

from softmax_oracle.spec.catalogue import render_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_claims_catalogue_is_up_to_date():
    committed = (DOCS / "claims.md").read_text(encoding="utf-8")
    assert committed == render_markdown() + "\n", (
        "docs/claims.md is stale: run `softmax-oracle claims --markdown > docs/claims.md`")


def test_every_claim_is_in_the_catalogue():
    from softmax_oracle import CLAIMS

    text = (DOCS / "claims.md").read_text(encoding="utf-8")
    for c in CLAIMS:
        assert f"`{c.id}`" in text


def test_ci_runs_the_readme_commands_with_the_pinned_versions():
    """CI installs exactly as the README says (with constraints.txt) and runs the README's test
    command; the constraints pin every package a fresh install pulls in."""
    import re

    root = DOCS.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r"^python3 -m venv \.venv && (.*) && \.venv/bin/softmax-oracle report$",
                        readme, re.M)
    assert install, "README: the install command is not where it was"
    for step in install.group(1).split(" && "):
        assert "-c constraints.txt" in step, step
        assert step.replace("pip install ", "pip install -q ", 1) in ci, step
    tests = re.search(r"^(\.venv/bin/python -m pytest.*)$", readme, re.M)
    assert tests and tests.group(1) in ci.splitlines()
    pins = {line.split("==")[0].lower().replace("_", "-")
            for line in (root / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for pkg in ("numpy", "scipy", "hypothesis", "mpmath", "torch", "jax", "ml-dtypes", "pytest"):
        assert pkg in pins, f"constraints.txt does not pin {pkg}"
