"""Playwright driving Debian's Chromium (package ``chromium``, installed by ``make test`` when root): where the
browser is, and a page that records console errors and failed requests.

``VAEKIT_CHROMIUM`` names the executable; otherwise ``chromium`` or ``chromium-browser`` on the PATH. Without
one a browser test skips with the reason printed (``-rs``); in CI (``CI=true``) it fails instead, since the
set-up installs it there.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest


def chromium_path() -> str | None:
    named = os.environ.get("VAEKIT_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def need_browser() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[dev]')"
    else:
        path = chromium_path()
        if path is not None:
            return path
        reason = "no Chromium: apt-get install chromium (as root, `make test` does), or set VAEKIT_CHROMIUM"
    if os.environ.get("CI"):
        pytest.fail(f"browser test in CI: {reason}")
    pytest.skip(reason)


@contextmanager
def browser_page(width: int = 1280, height: int = 900):
    """A Chromium page; ``page.problems`` collects console errors, page errors and failed requests."""
    from playwright.sync_api import sync_playwright

    path = need_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:120]} ({r.failure})"))
            page.problems = problems  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


def media_state(page) -> dict:
    """Every <img> and <audio> of the page: how many, and which did not load (images: no pixels; audio: an
    error or no metadata after loading)."""
    return page.evaluate("""async () => {
      const imgs = [...document.images];
      await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
      const audios = [...document.querySelectorAll('audio')];
      await Promise.all(audios.map(a => a.readyState >= 1 || a.error ? null :
        new Promise(r => { a.onloadedmetadata = a.onerror = r; setTimeout(r, 5000); })));
      return {images: imgs.length, audio: audios.length,
              broken_images: imgs.filter(i => !i.naturalWidth).map(i => i.alt || i.src.slice(0, 60)),
              broken_audio: audios.filter(a => a.error || !(a.duration > 0)).map(a => a.src.slice(0, 60))};
    }""")
