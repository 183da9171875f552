"""Headless Chromium (Debian's chromium-headless-shell) as a test renders a page in it.

No WebDriver and no DevTools client: the page is opened twice by the command
line, once with `--dump-dom` (the DOM after layout, with a probe script that
writes each data point's rendered box into the DOM) and once with
`--screenshot`. `hack/ensure-chromium.sh` installs the browser.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BINARY = "chromium-headless-shell"
FLAGS = ("--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1024,2000")
TIMEOUT = 60

# Appended to a copy of the page only: it measures what the browser laid out and
# writes it back as attributes, so the dumped DOM says whether each point is drawn.
PROBE = """<script>
for (const el of document.querySelectorAll('[data-value]')) {
  const box = el.getBoundingClientRect();
  el.setAttribute('data-drawn', `${box.width.toFixed(1)}x${box.height.toFixed(1)}`);
}
document.documentElement.setAttribute('data-probed', 'yes');
</script>"""


def chromium() -> str:
    found = shutil.which(BINARY)
    assert found, f"{BINARY} is not installed: run hack/ensure-chromium.sh (make integration does)"
    return found


def run(*args: str) -> str:
    done = subprocess.run(
        [chromium(), *FLAGS, *args], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    return done.stdout


def rendered_dom(page: Path) -> str:
    """The page's DOM after Chromium laid it out, each data point's box in data-drawn."""
    probed = page.with_name(page.stem + ".probed.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    return run("--dump-dom", probed.resolve().as_uri())


def screenshot(page: Path, png: Path) -> bytes:
    """A PNG of the page as Chromium draws it, written to `png` and returned."""
    png.parent.mkdir(parents=True, exist_ok=True)
    run(f"--screenshot={png.resolve()}", page.resolve().as_uri())
    return png.read_bytes()
