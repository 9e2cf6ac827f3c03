"""Render a run's report.html in headless Chromium: check every section, save a screenshot.

    python docs/tools/screenshot_report.py RUN_DIR/report.html docs/images/report.png

Needs a `chromium` (or `chromium-browser` / `google-chrome`) binary, e.g. Debian's
`apt-get install chromium`; not part of the test suite, which checks the HTML itself
(tests/test_report.py). The DOM Chromium dumps after rendering must hold every section of
`emotionkit.evaluate.report.REPORT_SECTIONS` and no broken image.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from emotionkit.evaluate.report import REPORT_SECTIONS

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    sys.exit(f"no headless browser found (tried {', '.join(BROWSERS)})")


def chromium(*args: str) -> str:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--height", type=int, default=2200, help="pixels of the page to capture")
    args = parser.parse_args()
    url = args.report.resolve().as_uri()
    dom = chromium("--dump-dom", url)
    missing = [name for name in REPORT_SECTIONS if f'id="{name}"' not in dom]
    if missing:
        sys.exit(f"rendered report lacks sections: {', '.join(missing)}")
    chromium(f"--window-size=1100,{args.height}", f"--screenshot={args.screenshot.resolve()}", url)
    print(f"all {len(REPORT_SECTIONS)} sections rendered; screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
