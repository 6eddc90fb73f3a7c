"""A small accessibility check run inside the page: WCAG contrast of text, labels of controls.

Written here on purpose (no third-party checker copied in): it computes the WCAG 2 contrast
ratio of every visible text element against its nearest opaque background, and checks that
every form control, button and image has an accessible name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

CHECK_JS = (Path(__file__).parent / "a11y_check.js").read_text()


def accessibility_problems(page: Page) -> list[str]:
    """Every contrast, size and labelling problem on the page (empty when it passes)."""
    result: dict[str, Any] = page.evaluate(CHECK_JS)
    assert result["checked"] > 5, "the checker found almost no text: is the page rendered?"
    return list(result["problems"])
