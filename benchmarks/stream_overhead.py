"""Cost of streaming every draw: sampling time with and without a stream, same seeds.

    python benchmarks/stream_overhead.py            # simple and logistic, seeds 1..5, 10 rounds

Streams to a ZeroMQ subscriber in another process (counting messages) and to a no-op
callback.  Runs interleave the modes (none, callback, zmq for one seed, then the next
seed, ten rounds), so drift in the machine's speed hits them alike.  Reports median
sampling seconds over the 50 runs and the overhead relative to no stream, both of the
medians and as the median (and quartiles) of each run against its neighbour without a
stream: the spread says how much of a small model's figure is the machine's noise.
"""
import socket
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import exmc
from benchmarks.models import MODELS

SEEDS = range(1, 6)
ROUNDS = 10
MODES = ("none", "callback", "zmq")

# Reconnects every 5 ms (ZeroMQ's default is 100 ms), so it subscribes as soon as the
# sampler binds, like a viewer already waiting: the stream then runs during sampling,
# instead of after a long wait for the subscriber.
COUNTER = textwrap.dedent("""
    import sys, zmq
    sub = zmq.Context().socket(zmq.SUB); sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 5)
    sub.connect(sys.argv[1]); sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
    print("ready", flush=True)
    n = 0
    while sub.poll(10000):
        topic, body = sub.recv_multipart(); n += 1
        if b"exmc_done" in body:
            break
    print(n, flush=True)
""")


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def timed(name, seed, mode):
    """(sampling seconds, seconds until the last message left) for one run."""
    kwargs = {"chains": 1, "seed": seed, "progressbar": False}
    if mode == "none":
        t = exmc.sample(MODELS[name](), **kwargs).attrs["sampling_time"]
        return t, t
    if mode == "callback":
        attrs = exmc.sample_stream(MODELS[name](), lambda m: None, **kwargs).attrs
        return attrs["sampling_time"], attrs["stream_time"]
    address = free_address()
    counter = subprocess.Popen([sys.executable, "-c", COUNTER, address], stdout=subprocess.PIPE,
                               text=True)
    counter.stdout.readline()
    idata = exmc.sample_stream(MODELS[name](), address, **kwargs)
    received = int(counter.communicate(timeout=60)[0].split()[-1])
    expected = idata.attrs["num_warmup"] + idata.posterior.sizes["draw"] + 1  # and exmc_done
    if received != expected:
        raise RuntimeError(f"the subscriber got {received} messages of {expected}")
    return idata.attrs["sampling_time"], idata.attrs["stream_time"]


def main():
    for name in ("simple", "logistic"):
        timed(name, 1, "none")  # compile
        runs = {mode: [] for mode in MODES}
        for _ in range(ROUNDS):
            for seed in SEEDS:
                for mode in MODES:
                    runs[mode].append(timed(name, seed, mode))
        base = statistics.median(r[0] for r in runs["none"])
        cells = []
        for mode in ("callback", "zmq"):
            sampling = statistics.median(r[0] for r in runs[mode])
            flushed = statistics.median(r[1] for r in runs[mode])
            # each run against the run without a stream just before it (same seed, same round)
            paired = [100 * (r[0] / n[0] - 1) for r, n in zip(runs[mode], runs["none"])]
            low, mid, high = statistics.quantiles(paired, n=4)
            cells.append(f"{mode}: sampling {sampling:.4f} s ({100 * (sampling / base - 1):+.1f}%; "
                         f"paired median {mid:+.1f}%, quartiles {low:+.1f}% {high:+.1f}%), "
                         f"last message out {flushed:.4f} s")
        print(f"{name:9s} no stream: sampling {base:.4f} s | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
