"""A screenshot of the search page on a reproduced run, as in the README (docs/search-page.png).

Starts ``graphhash serve`` on a free port of 127.0.0.1 for the run (default: this repository, after
``dvc repro``), opens the page in headless Chromium (Debian's, through Playwright), clicks a query item of
the run so that its results show with relevance marks, and saves the page. Needs ``chromium`` on the PATH and
Playwright (the ``dev`` extra: ``pip install -e .[dev]``). It writes no table into docs/benchmarks.md: its figure
is the image.

    python bench/page_screenshot.py [--run .] [--k 10] [--out docs/search-page.png]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=".")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", default="docs/search-page.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("skipped: no chromium on the PATH (apt-get install chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).parent / "graphhash"), "serve", "--port", str(port),
                               "--run", args.run])  # fmt: skip
    try:
        for _ in range(600):
            try:
                httpx2.get(f"{url}/api/info", timeout=1)
                break
            except httpx2.HTTPError:
                time.sleep(0.1)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#k", str(args.k))
            page.click("#browse .cell:nth-child(8)")
            page.wait_for_function(f"document.querySelectorAll('#results .cell').length === {args.k}")
            page.wait_for_function("[...document.images].every(img => img.complete)")
            page.screenshot(path=args.out)
            browser.close()
        print(f"{args.out}: written")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
