"""The docs that are generated from the code must not go stale."""

from __future__ import annotations

from pathlib import Path

from softmax_oracle.catalogue import render_markdown

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
