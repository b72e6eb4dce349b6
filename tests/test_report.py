"""report.html: written by training, rebuilt by report.py, opened in a real headless browser, and
built for awkward runs (one label; 1,000 labels, most absent from dev)."""

import html as html_lib
import json
import re
import shutil
import subprocess

import pytest
from conftest import REVIEWS, TINY_OPTIONS, assert_report, run_command, write_hellonlp

import classifier_multi_label as cml
from classifier_multi_label.reporting import _highlight

# Reads, once the page and its fonts have loaded, whether each image decoded and each web font loaded.
PROBE = """<script>window.addEventListener("load", () => document.fonts.ready.then(() =>
  document.body.setAttribute("data-probe", JSON.stringify({
    images: Array.from(document.images, i => [i.complete, i.naturalWidth]),
    fonts: Array.from(document.fonts, f => [f.family, f.status])}))));</script>"""


def open_in_browser(html: str, tmp_path):
    """(probe, console lines) of `html` in headless chromium; the page itself has no script, so any
    console line (a blocked resource, a bad data URL) is a defect."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (.ci/run installs Debian's: apt-get install chromium)")
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=10000",  # dump the DOM once pending work (fonts) is done
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, proc.stdout[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    return probe, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_the_session_runs_reports_load_in_a_browser(sigmoid_run_dir, denses_run_dir, demo_run_dir, tmp_path):
    for run_dir in (sigmoid_run_dir, denses_run_dir, demo_run_dir):  # train.py, python -m, the Python API
        html = assert_report(run_dir)
        probe, console = open_in_browser(html, tmp_path)
        assert console == []
        assert len(probe["images"]) == html.count("<img ") and all(ok and width > 0 for ok, width in probe["images"])
        assert probe["fonts"] == [["Report Sans SC", "loaded"]]  # used by the page's Chinese text, and valid


def test_report_command_rebuilds_a_run_on_another_test_file(demo_run_dir, tmp_path):
    test = write_hellonlp(tmp_path / "other.csv", REVIEWS[:5])
    out = tmp_path / "new folder" / "other.html"  # missing folders are made
    before = (demo_run_dir / "report.html").read_text(encoding="utf-8")
    proc = run_command("classifier_multi_label_textcnn/report.py", "--model-dir", demo_run_dir, "--test-file", test,
                       "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    html = assert_report(demo_run_dir, out)
    assert "train 36, dev 12, test 5" in html and REVIEWS[0][0] in html  # the other file's rows
    assert (demo_run_dir / "report.html").read_text(encoding="utf-8") == before  # the run folder is left alone


def test_report_highlights_why_each_label_was_predicted_or_missed(demo_run_dir):
    html = (demo_run_dir / "report.html").read_text(encoding="utf-8")
    section = html[html.index('id="explained"'):html.index('id="label-errors"')]
    rows = re.findall(r'<tr><td>(predicted right|largest loss)</td><td class="n">(\d+)</td><td>([^<]+)</td>'
                      r'<td class="n">[\d.]+</td><td>(correct|missed|false positive)</td>\s*<td class="hl">(.*?)</td>',
                      section, re.S)
    assert {kind for kind, *_ in rows} == {"predicted right", "largest loss"}
    texts = {t for t, _ in REVIEWS}
    for kind, line, label, verdict, cell in rows:
        assert html_lib.unescape(re.sub(r"<[^>]+>", "", cell)) in texts  # the whole text, in order
        assert (kind == "predicted right") == (verdict == "correct") or kind == "largest loss"
        # each row's largest attribution is drawn at full strength, red or blue
        assert re.search(r'background: rgba\((220, 40, 40|40, 90, 220), 1\.00\)', cell)
    assert any(verdict != "correct" for *_, verdict, _ in rows)  # the errors show what was missed or wrong


def test_highlight_covers_the_text_and_colours_spans_by_their_share():
    spans = [{"span": "制热", "start": 0, "end": 2, "attribution": 2.0},
             {"span": "吵", "start": 3, "end": 4, "attribution": -1.0}]
    segments = _highlight("制热，吵 ok", spans)
    assert "".join(s["text"] for s in segments) == "制热，吵 ok"
    assert [s["style"] for s in segments] == ["background: rgba(220, 40, 40, 1.00)", "",
                                              "background: rgba(40, 90, 220, 0.50)", ""]


def test_report_command_bad_input(demo_run_dir, tmp_path):
    proc = run_command("classifier_multi_label_textcnn/report.py", "--model-dir", tmp_path / "nowhere")
    assert proc.returncode == 2 and "no config.json; is this a run folder" in proc.stderr
    unknown = write_hellonlp(tmp_path / "unknown.csv", [("制热很快", ["新标签"])])
    proc = run_command("classifier_multi_label_textcnn/report.py", "--model-dir", demo_run_dir, "--test-file", unknown)
    assert proc.returncode == 2 and "新标签" in proc.stderr and str(unknown) in proc.stderr
    proc = run_command("classifier_multi_label_textcnn/report.py", "--model-dir", demo_run_dir, "--output", tmp_path)
    assert proc.returncode == 2 and f"--output {tmp_path}: is a folder; give a file path" in proc.stderr


def tiny_run(tmp_path, train, dev):
    return cml.train("sigmoid", train=train, dev=dev, test=dev, output_dir=str(tmp_path / "run"), baseline="none",
                     export=False, **dict(TINY_OPTIONS, epochs=1, report=True))


def test_report_of_a_run_with_one_label(tmp_path):
    texts = [t for t, _ in REVIEWS]
    labels = [["制热"] if "制热" in ls else [] for _, ls in REVIEWS]
    run = tiny_run(tmp_path, (texts * 2, labels * 2), (texts, labels))
    html = assert_report(run.dir)
    assert "One label: nothing co-occurs." in html


@pytest.mark.slow  # about 26 s; the session runs' reports and the one-label report run by default
def test_report_of_a_run_with_a_thousand_labels_most_absent_from_dev(tmp_path):
    names = [f"标签{i:04d}" for i in range(1000)]
    texts = [f"{t} 编号{i}" for i, (t, _) in enumerate(REVIEWS * 84)][:1000]
    labels = [[names[i], names[(7 * i + 3) % 1000]] for i in range(1000)]  # every label 2 or more times
    run = tiny_run(tmp_path, (texts, labels), (texts[:20], labels[:20]))
    html = assert_report(run.dir)
    assert "F1 of each of the 1000 labels against its training frequency" in html  # a scatter, not 1,000 bars
    assert re.search(r"(9[6-9]\d) labels have no dev positive and no curve", html)
    assert "The 30 most frequent labels" in html
