"""The live log pane, failures, sweeps and reopened notebooks, seen in a real browser: headless
Debian Chromium against JupyterLab 4 and Notebook 7 on loopback.

What is checked is what a user sees: the newest line's box inside the pane's visible rect, the
view left alone after scrolling up, colours computed by the browser, the saved notebook after
its kernel is gone.
"""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    jupyter_server,
    need_browser,
    open_notebook,
    run_command,
    screenshot,
    shut_down_kernels,
    write_notebook,
)

pytestmark = pytest.mark.timeout(400)
LINES = 2000
SETUP = ("import batchai_jupyter as bai, time\n"
         "ws = bai.Workspace.create('.batchai', exist_ok=True)")
LOAD = "%load_ext batchai_jupyter"
# 2,000 time-stamped lines, a tqdm bar, colours, then a pause so the live pane can be looked at
LIVE_JOB = textwrap.dedent(f"""\
    %%batchai_job --experiment live
    import sys, time
    from tqdm import tqdm
    for i in range({LINES}):
        print(f"line {{i}} t={{time.time():.3f}}", flush=True)
        time.sleep(0.004)
    print("\\x1b[31mred alert\\x1b[0m plain", flush=True)
    for _ in tqdm(range(30), file=sys.stdout, mininterval=0, ascii=True):
        time.sleep(0.02)
    print("all printed", flush=True)
    time.sleep(6)
""")
# the JupyterLab variant also logs a metric while it prints: its live chart is checked there
LAB_JOB = LIVE_JOB.replace("from tqdm import tqdm\n", "from tqdm import tqdm\nfrom batchai_jupyter import Run\n") \
    .replace("    time.sleep(0.004)\n", "    time.sleep(0.004)\n    if i % 100 == 0:\n"
             "        Run.get_context().log('loss', 1.0 / (i + 1), step=i)\n")
FAILING_JOB = textwrap.dedent("""\
    %%batchai_job --experiment broken
    def load(shape):
        raise ValueError(f"bad input shape {shape}")
    print("loading", flush=True)
    load((3, 4))
""")
SWEEP = textwrap.dedent("""\
    parent = ws.experiment('sweep').submit(bai.JobSpec(command='sleep 4'))
    body = ("import sys\\nfrom batchai_jupyter import Run\\nr = Run.get_context()\\n"
            "lr = float(sys.argv[2])\\nfor s in range(4):\\n    r.log('final_acc', lr * (s + 1), step=s)\\n")
    kids = [ws.experiment('sweep').submit(bai.JobSpec(script='main.py', arguments=['--lr', str(lr)]),
                                          extra_files={'main.py': body.encode()}, parent_id=parent.id,
                                          tags={'arch': a})
            for lr, a in ((0.1, 'cnn'), (0.3, 'mlp'), (0.2, 'cnn'))]
    bai.RunDetails(parent, primary_metric='final_acc', goal='maximize').show()
""")
# Records, for every time-stamped line, how long after its print it was first inside the
# pane's visible rect (geometry, not text presence).
SAMPLER = """() => {
  window.__bai = {delays: [], seen: new Set()};
  const tick = () => {
    const box = document.querySelector('.bai-pane-scroll');
    if (box) {
      const b = box.getBoundingClientRect();
      const lines = box.querySelectorAll('.bai-pane-line');
      for (let k = lines.length - 1; k >= Math.max(0, lines.length - 4); k--) {
        const m = /t=(\\d+\\.\\d+)/.exec(lines[k].textContent);
        if (!m) continue;
        const r = lines[k].getBoundingClientRect();
        const inside = r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1;
        if (inside && !window.__bai.seen.has(m[1])) {
          window.__bai.seen.add(m[1]);
          window.__bai.delays.push(Date.now() / 1000 - parseFloat(m[1]));
        }
        break;
      }
    }
    requestAnimationFrame(tick);
  };
  tick();
}"""
FIRST_VISIBLE = """() => {
  const box = document.querySelector('.bai-pane-scroll');
  const b = box.getBoundingClientRect();
  for (const el of box.querySelectorAll('.bai-pane-line')) {
    const r = el.getBoundingClientRect();
    if (r.bottom > b.top + 1) return [el.textContent, Math.round(r.top - b.top), box.scrollTop];
  }
  return null;
}"""
CONTRAST = """(sel) => {
  const el = document.querySelector(sel);
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = null;
  for (let n = el; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c; break; }
  }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def _saved_outputs(path: Path) -> list[str]:
    return ["".join("".join(o.get("data", {}).get("text/html", "")) for o in c.get("outputs", []))
            for c in json.loads(path.read_text())["cells"]]


def _follow_checks(page: Any, expect: Any, theme_switch: bool) -> dict[str, float]:
    """The live pane while the job prints: the newest line in view, scrolling up left alone,
    jump to latest, the tqdm bar as one line, colours; returns the measured figures."""
    pane = page.locator(".bai-pane-scroll")
    expect(pane).to_be_visible(timeout=120_000)
    page.evaluate(SAMPLER)
    page.wait_for_function("() => window.__bai.delays.length > 30", timeout=120_000)
    # the user scrolls up: new lines keep coming, the view does not move
    pane.hover()
    page.mouse.wheel(0, -600)
    page.wait_for_timeout(300)
    before = page.evaluate(FIRST_VISIBLE)
    jump = page.locator(".bai-pane-jump")
    expect(jump).to_be_visible()
    page.wait_for_timeout(1200)
    after = page.evaluate(FIRST_VISIBLE)
    assert before is not None and after is not None
    assert after[0] == before[0] and abs(after[1] - before[1]) <= 2, (before, after)
    jump.click()
    expect(jump).to_be_hidden()
    page.wait_for_function(
        "() => document.querySelector('.bai-pane-scroll').innerText.includes('all printed')",
        timeout=120_000)
    page.wait_for_timeout(500)
    text = pane.inner_text()
    bars = [line for line in text.splitlines() if "|" in line and "it" in line]
    assert len(bars) == 1 and "100%" in bars[0], bars  # the bar redrew in place: one line
    assert "[31m" not in text and "red alert" in text
    red = page.evaluate("""() => { const s = [...document.querySelectorAll('.bai-pane-line span')]
        .find(e => e.textContent === 'red alert'); return s && getComputedStyle(s).color; }""")
    plain = page.evaluate("() => getComputedStyle(document.querySelector('.bai-pane-line')).color")
    assert red and red != plain, (red, plain)
    # the newest line is in view: geometry of the last line against the scroll box
    inside = page.evaluate("""() => { const box = document.querySelector('.bai-pane-scroll');
        const b = box.getBoundingClientRect();
        const el = [...box.querySelectorAll('.bai-pane-line')].reverse()
            .find(e => e.textContent.includes('all printed'));
        const r = el.getBoundingClientRect(); return r.top >= b.top - 1 && r.bottom <= b.bottom + 1; }""")
    assert inside
    figures = {"contrast_light": page.evaluate(CONTRAST, ".bai-pane-line")}
    if theme_switch:
        run_command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_timeout(500)
        figures["contrast_dark"] = page.evaluate(CONTRAST, ".bai-pane-line")
        figures["contrast_dark_badge"] = page.evaluate(CONTRAST, ".bai-status")
    delays = page.evaluate("() => window.__bai.delays")
    figures["p95"] = p95(delays)
    figures["max"] = max(delays)
    figures["samples"] = len(delays)
    return figures


def test_live_pane_follows_the_tail_in_jupyterlab(tmp_path: Path) -> None:
    need_browser()
    from playwright.sync_api import expect, sync_playwright
    root = tmp_path / "nb"
    root.mkdir()
    write_notebook(root / "live.ipynb", [SETUP, LOAD, LAB_JOB])
    with jupyter_server(tmp_path, root, "lab") as (base, token), sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            open_notebook(page, f"{base}/lab/tree/live.ipynb?token={token}")
            run_command(page, "notebook:run-all-cells")
            chart = page.locator('.bai-mchart[data-metric="loss"]')
            expect(chart.locator("svg")).to_be_visible(timeout=120_000)
            first_label = chart.locator(".bai-mchart-last").inner_text()
            figures = _follow_checks(page, expect, theme_switch=True)
            # the live chart got its points as they came: the last value is the job's last one
            expect(chart.locator(".bai-mchart-last")).to_contain_text("last 0.000526", timeout=30_000)
            assert first_label != chart.locator(".bai-mchart-last").inner_text(), first_label
            box = chart.locator("svg").bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50, box
            expect(chart.locator("svg path.bai-mseries")).to_be_visible()  # a line, not a dot
            chart.scroll_into_view_if_needed()
            screenshot(page, "live-metric-chart-dark.png")
            print(f"print -> visible in the pane: p95 {figures['p95'] * 1000:.0f} ms, max "
                  f"{figures['max'] * 1000:.0f} ms over {figures['samples']} lines; contrast light "
                  f"{figures['contrast_light']:.1f}, dark {figures['contrast_dark']:.1f}, badge "
                  f"{figures['contrast_dark_badge']:.1f}")
            assert figures["samples"] > 40
            assert figures["p95"] <= 1.0, figures  # the newest line in view within a second
            assert figures["contrast_dark"] >= 4.5 and figures["contrast_light"] >= 4.5, figures
            assert figures["contrast_dark_badge"] >= 4.5, figures
            screenshot(page, "live-followed-tail-dark.png")
            # the run ends: the display becomes the static summary, charts and log tail kept
            summary = page.locator(".bai-run-summary")
            expect(summary.locator('.bai-status[data-status="Completed"]')).to_be_visible(timeout=120_000)
            expect(summary.locator(".bai-log")).to_contain_text("all printed")
            assert page.evaluate(CONTRAST, ".bai-run-summary .bai-log-lines") >= 4.5
        except BaseException:
            screenshot(page, "live-failure-of-test.png")
            raise
        finally:
            browser.close()


def _sorted_column(cell: Any, column: str) -> list[str]:
    """The values of one column of a child-run table, top to bottom, as the page shows them."""
    return cell.evaluate("""(el, name) => {
        const table = el.querySelector('.bai-children-table');
        const heads = [...table.querySelectorAll('thead th')].map(th => th.dataset.column);
        const k = heads.indexOf(name);
        return [...table.querySelectorAll('tbody tr')].map(tr => tr.cells[k].textContent);
    }""", column)


def _sort_and_open_a_child(cell: Any, expect: Any) -> None:
    """An interactive sweep view: a header click sorts (again: the other way), "open" shows a
    child in place, Back returns to the table."""
    table = cell.locator(".bai-children-table").first  # the parent's (an opened child has one too)
    expect(table.locator("tbody tr")).to_have_count(3, timeout=60_000)
    assert _sorted_column(cell, "final_acc") == ["1.2", "0.8", "0.4"]  # the goal: maximize
    assert table.locator("tbody tr").first.get_attribute("class") == "bai-best"
    table.locator('th[data-column="lr"]').click()
    expect(table.locator('th[data-column="lr"]')).to_contain_text("▲")
    assert _sorted_column(cell, "lr") == ["0.1", "0.2", "0.3"]
    table.locator('th[data-column="lr"]').click()
    expect(table.locator('th[data-column="lr"]')).to_contain_text("▼")
    assert _sorted_column(cell, "lr") == ["0.3", "0.2", "0.1"]
    child_id = table.locator("tbody tr").first.get_attribute("data-run-id")
    table.locator("tbody tr").first.locator(".bai-open-child").click()
    back = cell.get_by_role("button", name="Back to the child runs")
    expect(back).to_be_visible(timeout=30_000)
    expect(cell.locator(".bai-run-details .bai-run-details .bai-header")).to_contain_text(child_id)
    expect(table).to_be_hidden()
    back.click()
    expect(table).to_be_visible()
    expect(cell.locator(".bai-run-details .bai-run-details")).to_have_count(0)


# the same test in both front ends: (app, the notebook's URL path)
FRONT_ENDS = [pytest.param("lab", "/lab/tree/more.ipynb", id="jupyterlab"),
              pytest.param("notebook", "/notebooks/more.ipynb", id="notebook7")]


@pytest.mark.parametrize(("app", "path"), FRONT_ENDS)
def test_failure_sweep_and_reopened_notebook(tmp_path: Path, app: str, path: str) -> None:
    need_browser()
    if app == "notebook":
        pytest.importorskip("notebook", reason="notebook 7 is not installed")
    from playwright.sync_api import expect, sync_playwright
    root = tmp_path / "nb"
    root.mkdir()
    wait_all = "for r in ws.runs():\n    r.wait_for_completion(raise_on_error=False)\ntime.sleep(2)"
    # the last cell: the interactive view of the finished sweep, saved as it is shown
    again = "bai.RunDetails(parent, primary_metric='final_acc', goal='maximize')"
    write_notebook(root / "more.ipynb", [SETUP, LOAD, FAILING_JOB, SWEEP, wait_all, again])
    with jupyter_server(tmp_path, root, app) as (base, token), sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload
        url = f"{base}{path}?token={token}"
        try:
            open_notebook(page, url)
            run_command(page, "notebook:run-all-cells")
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            failing = cells.nth(2)
            expect(failing.locator('.bai-status[data-status="Failed"]')).to_be_visible(timeout=120_000)
            expect(failing).to_contain_text("ValueError: bad input shape (3, 4)", timeout=30_000)
            expect(failing).to_contain_text("Traceback")
            expect(failing).to_contain_text("exit codes")
            failing.scroll_into_view_if_needed()
            # the summary's log box fits its one line (no other rule stretches it)
            stdout_box = failing.locator(".bai-run-summary .bai-log").first.bounding_box()
            assert stdout_box is not None and stdout_box["height"] < 80, stdout_box
            screenshot(page, f"{app}-failure.png")
            sweep = cells.nth(3)
            expect(sweep.locator(".bai-run-summary .bai-sweep-charts img").first).to_be_visible(timeout=180_000)
            expect(sweep).to_contain_text("★")
            expect(sweep.locator(".bai-parallel img")).to_be_visible()
            last = cells.nth(5)
            expect(last.locator(".jp-InputPrompt")).to_have_text("[6]:", timeout=180_000)
            sweep.scroll_into_view_if_needed()
            screenshot(page, f"{app}-sweep-with-charts.png")
            _sort_and_open_a_child(last, expect)
            last.scroll_into_view_if_needed()
            screenshot(page, f"{app}-sweep-interactive.png")
            run_command(page, "docmanager:save")
            saved = root / "more.ipynb"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and 'data-status="Failed"' not in "".join(_saved_outputs(saved)):
                time.sleep(0.2)
            outputs = json.loads(saved.read_text())["cells"]
            kinds = {m for c in outputs for o in c.get("outputs", []) for m in o.get("data", {})}
            assert "application/vnd.jupyter.widget-view+json" not in kinds, kinds
            # the kernel goes away; the notebook is opened again with a new one
            shut_down_kernels(base, token)
            page.reload()
            open_notebook(page, url)
            page.wait_for_timeout(1500)
            expect(page.locator(".jp-Notebook")).not_to_contain_text("model not found")
            expect(cells.nth(5).locator(".bai-run-summary .bai-sweep-charts img").first).to_be_visible()
            expect(cells.nth(2).locator('.bai-status[data-status="Failed"]')).to_be_visible()
            expect(cells.nth(2)).to_contain_text("ValueError: bad input shape (3, 4)")
            img = cells.nth(3).locator(".bai-sweep-charts img").first
            expect(img).to_be_visible()
            assert page.evaluate("(e) => e.naturalWidth", img.element_handle()) > 0
            cells.nth(3).scroll_into_view_if_needed()
            screenshot(page, f"{app}-reopened-notebook.png")
            # changed outside Jupyter, the notebook is untrusted: its HTML is sanitized, and the
            # charts (images with data URIs) stay
            nb = json.loads(saved.read_text())
            nb["metadata"]["edited_elsewhere"] = True
            saved.write_text(json.dumps(nb))
            shut_down_kernels(base, token)
            page.reload()
            open_notebook(page, url)
            trusted = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.model
                .cells.get(3).trusted""")
            assert trusted is False
            img = cells.nth(3).locator(".bai-sweep-charts img").first
            expect(img).to_be_visible(timeout=30_000)
            assert page.evaluate("(e) => e.naturalWidth", img.element_handle()) > 0
            expect(cells.nth(2)).to_contain_text("ValueError: bad input shape (3, 4)")
        except BaseException:
            screenshot(page, f"{app}-more-failure-of-test.png")
            raise
        finally:
            browser.close()


def test_live_pane_follows_the_tail_in_notebook7(tmp_path: Path) -> None:
    need_browser()
    pytest.importorskip("notebook", reason="notebook 7 is not installed")
    from playwright.sync_api import expect, sync_playwright
    root = tmp_path / "nb"
    root.mkdir()
    write_notebook(root / "live.ipynb", [SETUP, LOAD, LIVE_JOB])
    with jupyter_server(tmp_path, root, "notebook") as (base, token), sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        try:
            open_notebook(page, f"{base}/notebooks/live.ipynb?token={token}")
            run_command(page, "notebook:run-all-cells")
            expect(page.locator(".bai-run-details .bai-header")).to_be_visible(timeout=120_000)
            # compact at 900 px: a one-line header, folded properties, nothing wider than the page
            sizes = page.evaluate("""() => {
                const w = document.querySelector('.bai-run-details');
                const h = w.querySelector('.bai-header').getBoundingClientRect().height;
                const p = w.querySelector('.bai-properties-box').getBoundingClientRect().height;
                return [h, p, w.scrollWidth - w.clientWidth];
            }""")
            assert sizes[0] <= 80 and sizes[1] <= 30 and sizes[2] <= 1, sizes
            figures = _follow_checks(page, expect, theme_switch=True)
            print(f"Notebook 7: print -> visible p95 {figures['p95'] * 1000:.0f} ms over "
                  f"{figures['samples']} lines; contrast light {figures['contrast_light']:.1f}, dark "
                  f"{figures['contrast_dark']:.1f}, badge {figures['contrast_dark_badge']:.1f}")
            assert figures["samples"] > 40 and figures["p95"] <= 1.0, figures
            assert figures["contrast_light"] >= 4.5 and figures["contrast_dark"] >= 4.5, figures
            assert figures["contrast_dark_badge"] >= 4.5, figures
            screenshot(page, "notebook-live-followed-tail-dark.png")
            summary = page.locator(".bai-run-summary")
            expect(summary.locator('.bai-status[data-status="Completed"]')).to_be_visible(timeout=120_000)
            assert page.evaluate(CONTRAST, ".bai-run-summary .bai-log-lines") >= 4.5
            summary.scroll_into_view_if_needed()
            screenshot(page, "notebook-summary-dark.png")
        except BaseException:
            screenshot(page, "nb7-failure-of-test.png")
            raise
        finally:
            browser.close()
