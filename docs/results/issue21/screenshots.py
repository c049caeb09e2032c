"""Screenshots of the issue-21 pages in Chromium (through tests/browser.py) with what loaded on each: every
<img> and <audio> element, console errors and failed requests. Writes docs/results/report/<name>.png (the
top 1600 pixels of the full page, 1280 wide) and docs/results/issue21/screenshots.json.

    python docs/results/issue21/screenshots.py name=path/to/page.html ... [explorer=http://127.0.0.1:PORT/]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from browser import browser_page, media_state  # noqa: E402

OUT = ROOT / "docs" / "results" / "report"
HEIGHT = 1600


def main(pages: list[str]) -> None:
    from PIL import Image

    OUT.mkdir(parents=True, exist_ok=True)
    record = ROOT / "docs" / "results" / "issue21" / "screenshots.json"
    summary = json.loads(record.read_text()) if record.is_file() else {}  # pages not named again are kept
    for spec in pages:
        name, where = spec.split("=", 1)
        url = where if where.startswith("http") else Path(where).resolve().as_uri()
        with browser_page() as page:
            page.goto(url)
            if where.startswith("http"):  # the explorer: wait for its first decode, then interpolate and sample
                page.wait_for_function("() => +(document.body.dataset.decodes || 0) >= 1", timeout=60000)
                page.click("#interp")
                page.wait_for_function("() => document.querySelector('#frames').dataset.count", timeout=60000)
                page.click("#sample")
                page.wait_for_function("() => document.querySelector('#samples').dataset.count", timeout=60000)
            media = media_state(page)
            full = OUT / f"{name}.png"
            page.screenshot(path=str(full), full_page=True)
            shots = [str(full.relative_to(ROOT))]
            for section in ("figures", "audio", "music", "text"):  # the report's media, as a reader scrolls to them
                if page.locator(f"h2#{section}").count():
                    page.evaluate(f"() => document.getElementById('{section}').scrollIntoView()")
                    path = OUT / f"{name}_{section}.png"
                    page.screenshot(path=str(path))
                    shots.append(str(path.relative_to(ROOT)))
            problems = list(page.problems)
            wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            if wide > 0:  # something (a table, a long line) widens the page past the window
                problems.append(f"page {wide} px wider than the window")
        im = Image.open(full)
        im.crop((0, 0, im.width, min(im.height, HEIGHT))).convert("RGB").save(full, optimize=True)
        size = {} if where.startswith("http") else {"page_mib": Path(where).stat().st_size / 2**20}
        summary[name] = {"page": where if where.startswith("http") else str(Path(where)), **size, **media,
                         "problems": problems, "full_height_px": im.height, "screenshots": shots}
        print(name, summary[name])
    record.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
