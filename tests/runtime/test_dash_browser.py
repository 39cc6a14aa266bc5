"""exmc dash in a real headless Chromium: a live run's page, a stream with gaps, a dashboard started too late.

Driven over the DevTools protocol (exmc.runtime.dash.chromium). Skipped, saying why, where no
Chromium is installed (.ci/run installs Debian's). Each test checks the page's text as a
script reads it, that the plots drew their series (pixels of the chains' colours on the
canvases), that the console stayed free of errors, and saves a screenshot in its tmp_path.
``EXMC_DASH_SCREENSHOT=docs/dashboard.png`` also writes the live run's screenshot there
(the README's picture is made this way).
"""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.runtime import protocol
from exmc.runtime.dash import Dashboard
from exmc.runtime.dash.chromium import Chromium, find_chromium

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(find_chromium() is None,
                                 reason="no Chromium: apt-get install chromium (or set EXMC_CHROMIUM)")]

STATS = dict(lp=-1.0, energy=1.5, step_size=0.5, acceptance_rate=0.8, tree_depth=3, n_steps=7,
             diverging=False, recovered=False)

# Pixels of chain 0's colour (#1f77b4) on each plot canvas of each variable's panel.
DRAWN = """(() => {
  const out = {};
  for (const panel of document.querySelectorAll('#plots .variable')) {
    out[panel.dataset.variable] = [...panel.querySelectorAll('canvas')].map((canvas) => {
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let k = 0; k < d.length; k += 4)
        if (d[k + 3] > 200 && Math.abs(d[k] - 31) < 40 && Math.abs(d[k + 1] - 119) < 40
            && Math.abs(d[k + 2] - 180) < 40) n++;
      return n;
    });
  }
  return out;
})()"""

CHAIN_ROWS = """[...document.querySelectorAll('#chains tbody tr')].map((tr) => ({
  chain: +tr.dataset.chain, draws: +tr.querySelector('.draws').textContent,
  warmup: +tr.querySelector('.warmup').textContent, missed: +tr.querySelector('.missed').textContent,
  divergences: parseInt(tr.querySelector('.divergences').textContent, 10)}))"""


@pytest.fixture(scope="module")
def chromium():
    with Chromium(width=1300, height=900) as browser:
        browser.send("Network.enable")
        yield browser


@pytest.fixture
def browser(chromium):
    """The shared browser on a blank page with no events kept; blank again afterwards, so a
    page polling a server that a test has stopped does not log into the next test."""
    chromium.open("about:blank")
    chromium.clear_events()
    yield chromium
    chromium.open("about:blank")


def banner(browser, kind):
    return browser.evaluate(f"(document.getElementById('banner-{kind}') || {{}}).textContent || ''")


def chain_rows(browser):
    return browser.evaluate(CHAIN_ROWS)


def wait_for_rows(browser, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    rows = None
    while time.monotonic() < deadline:
        rows = chain_rows(browser)
        if predicate(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"the page's chains table never matched; last: {rows}")


def eight_schools():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    return (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
            .rv("theta", Normal("mu", "tau", shape=8)).obs("y", Normal("theta", sigma), y))


def test_live_run_in_chromium(browser, tmp_path):
    chains, warmup, draws = 4, 300, 700
    board = Dashboard(refresh=4)
    try:
        browser.open(board.url)
        browser.wait_for("window.exmcDash && window.exmcDash.polls >= 1")
        idata = exmc.sample(eight_schools(), chains=chains, num_samples=draws, num_warmup=warmup,
                            seed=4, progressbar=False, dashboard=board)
        rows = wait_for_rows(browser, lambda rows: len(rows) == chains
                             and all(r["draws"] == draws for r in rows))
        assert all(r["warmup"] == warmup and r["missed"] == 0 for r in rows)
        assert [r["divergences"] for r in rows] == \
            idata.sample_stats["diverging"].sum("draw").values.tolist()
        browser.wait_for("!!document.getElementById('banner-ended')")
        assert banner(browser, "ended") == "Run ended: every chain is done"
        assert browser.evaluate("document.getElementById('run-id').textContent") == idata.attrs["run_id"]
        names = browser.evaluate("[...document.querySelectorAll('#plots .variable')].map(p => p.dataset.variable)")
        assert names == ["mu", "tau", "theta"]
        text = browser.evaluate("document.body.innerText")
        for label in ("mu", "tau", "theta[0]", "theta[7]", "R-hat", "ESS bulk"):
            assert label in text, label
        # Chosen element of a vector: element 5 of theta, and the page asks for it.
        browser.evaluate("(() => { const i = document.querySelector('[data-variable=theta] input');"
                         " i.value = '5'; i.dispatchEvent(new Event('change')); })()")
        browser.wait_for("document.querySelector('[data-variable=theta] h3').textContent.startsWith('theta[5]')")
        drawn = browser.wait_for(f"(() => {{ const d = {DRAWN}; return Object.values(d).every("
                                 f"c => c.slice(0, 2).every(n => n > 50)) && d; }})()")
        assert set(drawn) == {"mu", "tau", "theta"} and len(drawn["theta"]) == 3, drawn
        assert browser.errors() == []
        # Everything the page loaded came from the dashboard itself: it works offline.
        origin = board.url.rstrip("/")
        requests = browser.requests()
        assert any(url.endswith("/static/uPlot.iife.min.js") for url in requests)
        assert [url for url in requests if not url.startswith((origin, "data:"))] == []
        shot = browser.screenshot(tmp_path / "dashboard.png")
        assert shot.stat().st_size > 10_000
        if os.environ.get("EXMC_DASH_SCREENSHOT"):
            save_small(shot, os.environ["EXMC_DASH_SCREENSHOT"])
    finally:
        browser.open("about:blank")
        board.close()


def save_small(png, target):
    """A copy of the screenshot for the docs: 64 colours (with Pillow, when installed) keep it small."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(png, target)
        return
    with Image.open(png) as image:
        image.convert("RGB").quantize(64).save(target, optimize=True)


def start_cli(*args):
    """``exmc dash`` in a subprocess; returns it and the URL it printed."""
    process = subprocess.Popen([sys.executable, "-m", "exmc.runtime.cli", "dash", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for _ in range(50):                       # the URL line, after any warnings
        lines.append(process.stdout.readline())
        match = re.search(r"(http://\S+)", lines[-1])
        if match:
            return process, match.group(1)
        if not lines[-1]:
            break
    process.kill()
    pytest.fail(f"exmc dash printed no URL: {''.join(lines)}{process.communicate(timeout=10)[0]}")


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    process.stdout.close()


def test_cli_follows_a_stream_with_gaps_then_its_end(browser, tmp_path):
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind("tcp://127.0.0.1:0")
    address = publisher.getsockopt_string(zmq.LAST_ENDPOINT)
    process, url = start_cli(address, "--port", "0", "--chains", "2", "--token", "t0k-en",
                             "--refresh", "5")
    try:
        assert url.endswith("/?token=t0k-en")
        assert publisher.poll(60_000) and publisher.recv() == b"\x01exmc."
        browser.open(url)
        rng = np.random.default_rng(9)

        def send(chain, i, seq):
            msg = protocol.sample_message("gappy", chain, i, seq, i < 50,
                                          {"mu": rng.normal(), "beta": rng.normal(size=40).tolist()},
                                          {**STATS, "diverging": i == 120})
            publisher.send_multipart(protocol.encode(msg))

        # First half: chain 1 loses messages 60..69 on the way (a slow viewer's gap).
        for chain in (0, 1):
            for i in range(150):
                if not (chain == 1 and 60 <= i < 70):
                    send(chain, i, i)
        rows = wait_for_rows(browser, lambda rows: [r["draws"] for r in rows] == [100, 90])
        assert [r["missed"] for r in rows] == [0, 10]
        assert "missed 10 messages" in banner(browser, "missed")
        assert banner(browser, "ended") == ""                   # still running: live, not at the end
        # The rest, then the end of both chains.
        for chain in (0, 1):
            for i in range(150, 300):
                send(chain, i, i)
            publisher.send_multipart(protocol.encode(protocol.done_message("gappy", chain, 300, 300)))
        rows = wait_for_rows(browser, lambda rows: [r["draws"] for r in rows] == [250, 240])
        browser.wait_for("!!document.getElementById('banner-ended')")
        assert [r["divergences"] for r in rows] == [1, 1]
        assert browser.evaluate("document.getElementById('run-id').textContent") == "gappy"
        text = browser.evaluate("document.body.innerText")
        assert "first 8 of 40 elements shown" in text
        assert "R-hat and ESS cover the last 240 draws" in text      # final, not a mid-run figure
        browser.wait_for(f"(() => {{ const d = {DRAWN}; return d.beta && d.beta[0] > 50; }})()")
        assert browser.errors() == []
        browser.screenshot(tmp_path / "gaps.png")
    finally:
        browser.open("about:blank")
        stop(process)
        publisher.close(linger=0)
        context.term()


def test_dashboard_started_after_the_run_ended(browser, tmp_path):
    context = zmq.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.bind("tcp://127.0.0.1:0")
    address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    socket.close(linger=0)                   # the run's publisher is gone
    process, url = start_cli(address, "--port", "0", "--quiet", "1")
    try:
        browser.open(url)
        browser.wait_for("!!document.getElementById('banner-absent')", timeout=30)
        text = banner(browser, "absent")
        assert f"Nothing is publishing at {address}" in text and "the run has ended" in text
        assert chain_rows(browser) == []
        assert browser.errors() == []
        browser.screenshot(tmp_path / "absent.png")
    finally:
        browser.open("about:blank")
        stop(process)
