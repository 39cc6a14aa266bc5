"""Which plotting library for the dashboard: uPlot against Plotly on the dashboard's own data, in Chromium.

    python benchmarks/dash_libraries.py --plotly path/to/plotly.min.js
    (the plotly wheel from PyPI holds it as plotly/package_data/plotly.min.js)

Both draw what one dashboard page draws: a snapshot made by ``DashState`` from 4 chains x 3000
draws of three variables (a trace of every chain, decimated to 400 x positions, with divergent
draws as markers, and a per-chain histogram: six plots), then redraw all six plots 60 times with
fresh data, as the page does on each poll.  Each library runs in a fresh headless Chromium on a
self-contained page (the library and the data inline, nothing fetched).  Reported per library:
its size, the time from the page's start to the first complete drawing, the renderer main
thread's busy time per update (Chromium's TaskDuration and ScriptDuration over the 60 updates)
and the JavaScript heap in use at the end.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exmc.runtime import protocol
from exmc.runtime.dash.chromium import Chromium
from exmc.runtime.dash.state import DashState

STATIC = Path(__file__).resolve().parent.parent / "exmc" / "runtime" / "dash" / "static"
UPDATES = 60
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]

HARNESS = """
const t0 = performance.now();
const variables = SNAPSHOT.variables;
const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
function jitter(v, k) {   // fresh data for each update, so every redraw does real work
  const shift = (a) => a.map((y) => y === null ? null : y + 1e-3 * k);
  return {trace: {x: v.trace.x, chains: v.trace.chains.map(shift), divergent: shift(v.trace.divergent)},
          histogram: {edges: v.histogram.edges, chains: v.histogram.chains.map(shift)}};
}
async function main() {
  const plots = variables.map((v) => create(v));
  await frame();
  const first = performance.now() - t0;
  const times = [];
  for (let k = 1; k <= UPDATES; k++) {
    const s = performance.now();
    await Promise.all(variables.map((v, j) => update(plots[j], jitter(v, k))));
    await frame();
    times.push(performance.now() - s);
  }
  window.result = {first_ms: first, update_ms: times};
}
window.addEventListener('load', () => setTimeout(main, 0));
"""

UPLOT = """
function box() { const d = document.createElement('div'); document.body.appendChild(d); return d; }
function create(v) {
  const common = {width: 360, height: 170, legend: {show: false}, cursor: {show: false}, scales: {x: {time: false}}};
  const chains = v.chains.map((c) => ({stroke: COLORS[c], width: 1}));
  const trace = new uPlot(Object.assign({}, common, {series: [{}].concat(chains, [{stroke: 'red', fill: 'red',
      paths: () => null, points: {show: true, size: 7}}])}),
    [v.trace.x].concat(v.trace.chains, [v.trace.divergent]), box());
  const hist = new uPlot(Object.assign({}, common, {series: [{}].concat(v.chains.map((c) => ({stroke: COLORS[c],
      width: 1, paths: uPlot.paths.stepped({align: 1})})))}), [v.histogram.edges].concat(v.histogram.chains), box());
  return {trace, hist};
}
function update(p, d) {
  p.trace.setData([d.trace.x].concat(d.trace.chains, [d.trace.divergent]));
  p.hist.setData([d.histogram.edges].concat(d.histogram.chains));
}
"""

PLOTLY = """
const layout = {width: 360, height: 170, margin: {l: 40, r: 5, t: 5, b: 25}, showlegend: false};
const config = {staticPlot: true};
function box() { const d = document.createElement('div'); document.body.appendChild(d); return d; }
function traces(d, chains) {
  return [chains.map((c, j) => ({x: d.trace.x, y: d.trace.chains[j], mode: 'lines', line: {color: COLORS[c], width: 1}}))
            .concat([{x: d.trace.x, y: d.trace.divergent, mode: 'markers', marker: {color: 'red', size: 7}}]),
          chains.map((c, j) => ({x: d.histogram.edges, y: d.histogram.chains[j], mode: 'lines',
                                 line: {color: COLORS[c], width: 1, shape: 'hv'}}))];
}
function create(v) {
  const [t, h] = traces(v, v.chains);
  const p = {trace: box(), hist: box(), chains: v.chains};
  Plotly.newPlot(p.trace, t, layout, config);
  Plotly.newPlot(p.hist, h, layout, config);
  return p;
}
function update(p, d) {
  const [t, h] = traces(d, p.chains);
  return Promise.all([Plotly.react(p.trace, t, layout, config), Plotly.react(p.hist, h, layout, config)]);
}
"""


def snapshot():
    state = DashState(trace_window=3000)
    rng = np.random.default_rng(0)
    stats = dict(lp=-1.0, energy=1.5, step_size=0.5, acceptance_rate=0.8, tree_depth=3, n_steps=7,
                 recovered=False)
    for chain in range(4):
        for i in range(3000):
            point = {"mu": rng.normal(), "tau": abs(rng.normal()), "theta": rng.normal(size=8).tolist()}
            state.update(protocol.sample_message("r", chain, i, i, i < 500, point,
                                                 {**stats, "diverging": bool(rng.random() < 0.01)}))
    return state.snapshot()


def page(library_js: str, glue: str, document: dict) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<style>{(STATIC / 'uPlot.min.css').read_text()}</style></head><body>"
            f"<script>{library_js}</script><script>const SNAPSHOT = {json.dumps(document)};"
            f"const UPDATES = {UPDATES}; const COLORS = {json.dumps(COLORS)};{glue}{HARNESS}</script>"
            "</body></html>")


def measure(name, html_path):
    with Chromium(width=1300, height=900) as browser:
        before = browser.metrics()
        start = time.perf_counter()
        browser.open(html_path.as_uri())
        result = browser.wait_for("window.result", timeout=300, interval=0.25)
        wall = time.perf_counter() - start
        after = browser.metrics()
        errors = browser.errors()
    updates = result["update_ms"]
    busy = {k: after.get(k, 0) - before.get(k, 0) for k in ("TaskDuration", "ScriptDuration")}
    return {"library": name, "first_drawing_ms": round(result["first_ms"], 1),
            "update_ms_median": round(statistics.median(updates), 2),
            "update_ms_p90": round(sorted(updates)[int(0.9 * len(updates))], 2),
            "main_thread_s_total": round(busy["TaskDuration"], 3),
            "script_s_total": round(busy["ScriptDuration"], 3),
            "js_heap_mb": round(after.get("JSHeapUsedSize", 0) / 2**20, 1),
            "wall_s": round(wall, 2), "console_errors": errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plotly", type=Path, help="plotly.min.js to compare against (skipped without)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    document = snapshot()
    document = {"variables": document["variables"]}
    libraries = {"uPlot 1.6.32": (STATIC / "uPlot.iife.min.js", UPLOT)}
    if args.plotly:
        libraries["Plotly " + _plotly_version(args.plotly)] = (args.plotly, PLOTLY)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (library, glue) in libraries.items():
            html = Path(folder) / (name.split()[0] + ".html")
            html.write_text(page(library.read_text(), glue, document))
            row = measure(name, html)
            row["library_kb"] = round(library.stat().st_size / 1024)
            row["page_kb_data"] = round(len(json.dumps(document)) / 1024)
            rows.append(row)
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def _plotly_version(path: Path) -> str:
    head = path.read_text(errors="replace")[:200]
    marker = "plotly.js v"
    return head[head.index(marker) + len(marker):].split()[0] if marker in head else "?"


if __name__ == "__main__":
    main()
