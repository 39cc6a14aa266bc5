"""The dashboard under a full-speed feed: 4 chains x 20,000 draws streamed to `exmc dash`, watched in Chromium.

    python benchmarks/dash_feed.py                       # eight_schools, 4 x (1000 + 20000)
    python benchmarks/dash_feed.py --model simple --draws 20000 --cores 4

The run streams to a ZeroMQ address (`exmc.sample_stream`); `exmc dash` follows it in another
process and headless Chromium shows its page, so the three share the machine as they would
for a user.  Reported:

* the run: messages, sampling seconds, messages per second published;
* the dashboard server (`exmc dash`): messages received against sent and missed (must be 0),
  seconds after the run's last message until its snapshot had every draw, CPU seconds
  (user + system, /proc) and that per message, and as a share of the wall time;
* the browser: the page's draw counts (must reach the totals), renderer main-thread busy time
  from Chromium's performance metrics (TaskDuration, ScriptDuration, Layout + RecalcStyle)
  and CPU seconds of every Chromium process (/proc), both as a share of the wall time, the
  snapshot's size and the number of polls;
* the same run without any stream or dashboard, for the sampler's own time.

Needs Chromium (`apt-get install chromium`, or EXMC_CHROMIUM).  Writes the figures as JSON
with --json.
"""
import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import exmc
from benchmarks.models import MODELS
from exmc.runtime.dash.chromium import Chromium

PAGE_COUNTS = """(() => { const s = window.exmcDash && window.exmcDash.last; if (!s) return null;
  return {draws: s.chains.map(c => c.draws), ended: s.status.ended, polls: window.exmcDash.polls,
          errors: window.exmcDash.errors, missed: s.missed}; })()"""


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def max_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def snapshot(url):
    api = url.replace("/?", "/api/state?") if "?" in url else url + "api/state"
    with urllib.request.urlopen(api, timeout=30) as response:
        body = response.read()
    return json.loads(body), len(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="eight_schools", choices=sorted(MODELS))
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=None, help="chains in worker processes")
    parser.add_argument("--refresh", type=float, default=2.0, help="page polls per second")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    model = MODELS[args.model]()
    options = dict(chains=args.chains, num_samples=args.draws, num_warmup=args.warmup, seed=1,
                   progressbar=False, cores=args.cores)
    sent = args.chains * (args.draws + args.warmup + 1)

    baseline = exmc.sample(model, **options).attrs["sampling_time"]   # also warms the caches

    address = free_address()
    server = subprocess.Popen([sys.executable, "-m", "exmc.runtime.cli", "dash", address,
                               "--port", "0", "--chains", str(args.chains),
                               "--refresh", str(args.refresh)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for _ in range(50):
            line = server.stdout.readline()
            match = re.search(r"(http://\S+)", line)
            if match:
                url = match.group(1)
                break
            if not line:
                break
        if url is None:
            raise SystemExit(f"exmc dash did not start: {server.communicate(timeout=10)[0]}")
        with Chromium(width=1300, height=900) as browser:
            browser.open(url)
            browser.wait_for("window.exmcDash && window.exmcDash.polls >= 1", timeout=60)
            time.sleep(1.0)                              # the page settles before the count starts
            metrics0, browser_cpu0 = browser.metrics(), browser.cpu_seconds()
            server_cpu0 = cpu_seconds(server.pid)
            start = time.perf_counter()
            idata = exmc.sample_stream(model, address, **options)
            run_end = time.perf_counter()
            deadline = run_end + 600
            while time.perf_counter() < deadline:
                state, size = snapshot(url)
                if state["status"]["ended"] and sum(c["draws"] for c in state["chains"]) == \
                        args.chains * args.draws:
                    break
                time.sleep(0.05)
            caught_up = time.perf_counter()
            server_cpu = cpu_seconds(server.pid) - server_cpu0
            server_rss = max_rss_mb(server.pid)
            page = browser.wait_for(f"(() => {{ const p = {PAGE_COUNTS}; return p && p.ended "
                                    f"&& p.draws.reduce((a, b) => a + b, 0) === "
                                    f"{args.chains * args.draws} && p; }})()", timeout=120)
            page_shown = time.perf_counter()
            metrics1, browser_cpu = browser.metrics(), browser.cpu_seconds() - browser_cpu0
            errors = browser.errors()
            browser.open("about:blank")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    wall = page_shown - start

    def busy(*names):
        return sum(metrics1.get(n, 0) - metrics0.get(n, 0) for n in names)

    figures = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, load average "
                   f"{os.getloadavg()[0]:.1f} at the end",
        "model": args.model, "chains": args.chains, "draws": args.draws, "warmup": args.warmup,
        "cores": args.cores, "refresh_hz": args.refresh,
        "messages_sent": sent, "messages_received": state["messages"], "missed": state["missed"],
        "sampling_s_without_stream": round(baseline, 3),
        "sampling_s": round(idata.attrs["sampling_time"], 3),
        "stream_s": round(idata.attrs["stream_time"], 3),
        "published_per_s": round(sent / idata.attrs["stream_time"]),
        "server_caught_up_after_run_s": round(caught_up - run_end, 3),
        "page_showed_all_after_run_s": round(page_shown - run_end, 3),
        "wall_s": round(wall, 3),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_share": round(server_cpu / (caught_up - start), 3),
        "server_cpu_us_per_message": round(1e6 * server_cpu / sent, 1),
        "server_peak_rss_mb": round(server_rss),
        "browser_task_s": round(busy("TaskDuration"), 3),
        "browser_script_s": round(busy("ScriptDuration"), 3),
        "browser_layout_style_s": round(busy("LayoutDuration", "RecalcStyleDuration"), 3),
        "browser_main_thread_share": round(busy("TaskDuration") / wall, 3),
        "browser_all_processes_cpu_s": round(browser_cpu, 3),
        "browser_all_processes_share": round(browser_cpu / wall, 3),
        "page_polls": page["polls"], "page_fetch_errors": page["errors"],
        "snapshot_bytes": size, "console_errors": errors,
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    ok = (state["missed"] == 0 and state["messages"] == sent and not errors
          and sum(page["draws"]) == args.chains * args.draws)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
