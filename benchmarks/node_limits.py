"""What hostile requests cost an exmc-node: memory and answer time of msgpack bombs, time to read
a 20,000-variable model while pings are answered, hello latency under 1,100 idle connections.

    python benchmarks/node_limits.py

Each figure is measured on a fresh loopback node (``exmc-node --workers 1``); the numbers
quoted in docs/security.md come from this script.
"""
from __future__ import annotations

import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import zmq

import exmc
from exmc.distributed import wire
from exmc.distributed.coordinator import wait_for_listening


def start_node(*args, soft_limit=None):
    log = Path(tempfile.mkdtemp()) / "node.log"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, hard))) \
        if soft_limit else None
    with open(log, "w") as fh:
        popen = subprocess.Popen([sys.executable, "-m", "exmc.distributed.cli", "--bind",
                                  "tcp://127.0.0.1:*", "--workers", "1", *args], stderr=fh,
                                 preexec_fn=limit)
    return popen, wait_for_listening(log, popen, 60)


def peak_mb(pid):
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def dealer(address):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(address)
    return s


def ask(s, payload, timeout=60):
    started = time.monotonic()
    s.send(payload)
    while s.poll(int(timeout * 1000)):
        reply = wire.unpack(s.recv())
        if reply["type"] != "pong":
            return reply, time.monotonic() - started
    return None, timeout


def bombs():
    for mb, shape in ((8, "flat"), (8, "nested"), (64, "flat"), (64, "nested")):
        popen, address = start_node("--max-message-mb", str(mb + 1))
        s = dealer(address)
        ask(s, wire.pack({"type": "hello"}))
        before = peak_mb(popen.pid)
        n = mb * 2**20
        if shape == "flat":  # one list of n empty lists (refused at its header: > 2**20 items)
            payload = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
        else:  # lists of 2**20 - 16 empty lists each: the item budget stops it
            k = 2**20 - 16
            inner = b"\xdd" + k.to_bytes(4, "big") + b"\x90" * k
            payload = b"\xdd" + (n // len(inner)).to_bytes(4, "big") + inner * (n // len(inner))
        reply, took = ask(s, payload)
        grown = peak_mb(popen.pid) - before
        print(f"{mb} MiB {shape} bomb: answered in {took:.2f} s ({reply['message'][:60]!r}), "
              f"node peak memory +{grown:.0f} MB ({grown / (len(payload) / 2**20):.1f}x)")
        s.close()
        popen.terminate()
        popen.wait(30)


def large_model():
    popen, address = start_node()
    b = exmc.Builder().rv("v0", exmc.Normal(0, 1))
    for i in range(1, 20_000):
        b = b.rv(f"v{i}", exmc.Normal(f"v{i - 1}", 1.0))
    ir = b.to_msgpack()
    seeds = np.random.SeedSequence(1).spawn(1)
    submit = {"type": "submit", "job": "big", "model": ir,
              "options": {"num_warmup": 10, "total": 20, "max_tree_depth": 5, "target_accept": 0.8,
                          "gradient_metric": False, "dense": False, "init": {"nope": 1.0}},
              "chains": [{"chain": 0, "entropy": str(seeds[0].entropy),
                          "spawn_key": list(seeds[0].spawn_key), "state": None}]}
    s = dealer(address)
    ask(s, wire.pack({"type": "hello"}))
    started = time.monotonic()
    s.send(wire.pack(submit))
    latencies, reply = [], None
    while reply is None and time.monotonic() - started < 120:
        t = time.monotonic()
        s.send(wire.pack({"type": "ping", "jobs": []}))
        while s.poll(5000):
            msg = wire.unpack(s.recv())
            if msg["type"] == "pong":
                latencies.append(time.monotonic() - t)
                break
            reply = msg
        time.sleep(0.05)
    took = time.monotonic() - started
    print(f"20,000-variable model ({len(ir) / 2**20:.1f} MiB IR): read and refused in {took:.2f} s; "
          f"{len(latencies)} pings meanwhile, slowest answer {max(latencies) * 1000:.0f} ms")
    s.close()
    popen.terminate()
    popen.wait(30)


def idle_connections(count=1100):
    popen, address = start_node(soft_limit=1024)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    host, port = urlsplit(address.replace("tcp://", "//")).netloc.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]
    s = dealer(address)
    started = time.monotonic()
    for _ in range(30):  # as a coordinator does: a hello on a turned-away link is lost
        reply, _ = ask(s, wire.pack({"type": "hello"}), timeout=1)
        if reply is not None:
            break
    took = time.monotonic() - started
    out = subprocess.run(["ss", "-tn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    print(f"{count} idle connections (node soft limit 1024 at start): hello answered after "
          f"{took:.2f} s ({reply['type'] if reply else 'no answer'}); the node holds "
          f"{len(out.splitlines()) - 1} connections then")
    for c in idle:
        c.close()
    s.close()
    popen.terminate()
    popen.wait(30)


if __name__ == "__main__":
    bombs()
    large_model()
    idle_connections()
