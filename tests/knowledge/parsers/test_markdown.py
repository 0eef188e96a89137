"""Markdown parsing: heading paths, lists, tables, front matter, through markdown-it-py."""

from __future__ import annotations

import pytest

from callwright.knowledge.parsers import MARKDOWN, Block, ParseError, parse_document
from tests.knowledge.parsers.samples import texts

MARKDOWN_DOC = """---
title: Acme help centre
access_tags: [staff, billing]
updated: 2024-05-01
---
# Billing

How we bill
our customers.

## Payment plans

We offer *monthly* and [yearly](https://example.com) plans.

- Monthly: pay as you go
- Yearly: two months free
  1. paid upfront
  2. renews automatically

### Card details

| Plan | Price |
|------|-------|
| Basic | 10 |
| Pro | 20 |

## Refunds

Refunds take 5 days.

```
refund --order 42
```

# Shipping

We ship worldwide.
"""


def test_markdown_heading_paths_pop_levels() -> None:
    doc = parse_document(MARKDOWN_DOC.encode(), filename="help.md")
    assert doc.mime_type == MARKDOWN
    by_text = {b.text: b.headings for b in doc.blocks}
    assert by_text["How we bill our customers."] == ("Billing",)
    assert by_text["We offer monthly and yearly plans."] == ("Billing", "Payment plans")
    assert by_text["Plan | Price\nBasic | 10\nPro | 20"] == (
        "Billing",
        "Payment plans",
        "Card details",
    )
    # ## after ### pops back to the second level; # after ## to the first.
    assert by_text["Refunds take 5 days."] == ("Billing", "Refunds")
    assert by_text["refund --order 42"] == ("Billing", "Refunds")
    assert by_text["We ship worldwide."] == ("Shipping",)


def test_markdown_list_is_one_block_and_front_matter_is_metadata() -> None:
    doc = parse_document(MARKDOWN_DOC.encode(), filename="help.md")
    assert (
        "- Monthly: pay as you go\n- Yearly: two months free\n  1. paid upfront\n"
        "  2. renews automatically"
    ) in texts(doc.blocks)
    assert doc.metadata == {
        "title": "Acme help centre",
        "access_tags": ["staff", "billing"],
        "updated": "2024-05-01",  # a YAML date, made JSON-safe
    }
    assert doc.title == "Acme help centre"
    assert not any("access_tags" in t or "---" in t for t in texts(doc.blocks))


def test_markdown_title_falls_back_to_first_h1() -> None:
    doc = parse_document(
        b"Intro line.\n\n# Real title\n\nBody.\n\n# Second\n\nMore.", filename="a.md"
    )
    assert doc.title == "Real title"
    assert doc.metadata == {}
    assert parse_document(b"## Only h2\n\ntext", filename="a.md").title is None


def test_markdown_front_matter_errors_and_non_mappings() -> None:
    with pytest.raises(ParseError, match="front matter"):
        parse_document(b"---\naccess_tags: [staff\n---\nBody", filename="a.md")
    # A rule and a setext heading are not front matter: the text stays.
    doc = parse_document(b"---\nJust a line\n---\nBody text.", filename="a.md")
    assert doc.metadata == {}
    assert "Body text." in texts(doc.blocks)


def test_markdown_heading_without_content_is_kept() -> None:
    doc = parse_document(b"# Contact\n\n## Opening hours\n\n## Phone\n\n555 0100", filename="a.md")
    assert doc.blocks == [
        Block("Opening hours", ("Contact", "Opening hours")),
        Block("555 0100", ("Contact", "Phone")),
    ]
