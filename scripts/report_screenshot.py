"""A PNG of one section of a run's report.html, for the docs: the page's style and inline font,
the section from its heading to the next, rendered by headless Chromium (Debian's `chromium`).

    python scripts/report_screenshot.py RUN/report.html explained docs/images/explain-demo.png
"""

import argparse
import os
import re
import shutil
import subprocess
import tempfile


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report")
    p.add_argument("section", help="the id of the section's heading, e.g. explained")
    p.add_argument("out")
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=640)
    args = p.parse_args()
    html = open(args.report, encoding="utf-8").read()
    head = html[:html.index("<body>")]
    start = html.index(f'<h2 id="{args.section}">')
    end = html.find("<h2 ", start + 1)
    body = html[start:end if end >= 0 else html.index("</body>")]
    body = re.sub(r'class="scroll"', "", body)  # the whole table, not a scrolling box
    page = head + '<body style="margin: 0; padding: 0.4em 1em">' + body + "</body></html>"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "section.html")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={args.width},{args.height}", f"--screenshot={os.path.abspath(args.out)}",
                        "file://" + path], check=True, capture_output=True, timeout=120)
    print(args.out)


if __name__ == "__main__":
    main()
