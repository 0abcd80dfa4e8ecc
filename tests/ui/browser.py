"""Debian's chromium, headless, driven by Playwright's Python package (never ``playwright install``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 800}
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => { for (const entry of list.getEntries()) window.__longTasks.push(entry.duration); })
  .observe({ type: "longtask", buffered: true });
"""
"""Every task that kept the page's main thread busy for 50 ms or more (the Long Tasks API)."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh browser (Playwright gives each launch a new temporary profile)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_of(browser: Browser, viewport: ViewportSize = WIDE) -> Iterator[Page]:
    """A page in its own context (its own session storage), watching long tasks, failing fast."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    context.add_init_script(LONG_TASKS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


def long_tasks(page: Page) -> list[float]:
    return page.evaluate("window.__longTasks")


def screenshot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
