"""4-chain runs by executor: in-process, the default, forked processes, and the warm pool.

    python benchmarks/parallel_chains.py [--model simple|linear|logistic] [--rounds 5]
    python benchmarks/parallel_chains.py --first-call [--model ...] [--rounds 5]

Warm runs: every configuration first runs once untimed in this process (the model compiled
and cached; for the pool, its workers started), then ``--rounds`` times interleaved, so
that drift in the machine's load is shared.  Printed: the median wall time of
``exmc.sample`` (4 chains, 1000 warmup + 1000 draws, progress and diagnostics off) and its
ratio to in-process.

``--first-call``: a session's first call, each in a fresh Python process (the model and
the sampler already in the on-disk caches, as on any run after the machine's first):
``exmc.sample`` from the call to the returned InferenceData, ArviZ's import and any worker
start included, configurations interleaved round by round.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import exmc
from exmc import Builder, HalfNormal, Normal, ref

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for benchmarks.models

CONFIGS = {"in-process": dict(executor="in-process"), "default": {},
           "processes-2": dict(executor="processes", cores=2),
           "processes-4": dict(executor="processes", cores=4),
           "pool-2": dict(executor="pool", cores=2),
           "pool-4": dict(executor="pool", cores=4)}


def linear():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = X @ np.array([1.0, -0.5, 0.25, 0.0, 2.0]) + rng.normal(0, 0.5, 200)
    return (Builder().rv("alpha", Normal(0, 10)).rv("beta", Normal(0, 10, shape=5))
            .rv("sigma", HalfNormal(1)).obs("y", Normal(ref("alpha") + X @ ref("beta"), "sigma"), y))


def logistic():
    from benchmarks.models import MODELS  # the race's own logistic model and data
    return MODELS["logistic"]()


def simple():
    from benchmarks.models import MODELS
    return MODELS["simple"]()


FIRST_CALL = """
import sys, time
sys.path.insert(0, {root!r})
import exmc
from benchmarks.parallel_chains import MODEL_BUILDERS
model = MODEL_BUILDERS[{model!r}]()
start = time.perf_counter()
exmc.sample(model, chains=4, num_samples=1000, num_warmup=1000, seed=1, progressbar=False,
            diagnostics=False, **{options!r})
print(time.perf_counter() - start)
"""


def first_calls(model, names, rounds):
    """{config: [seconds of a fresh process's first exmc.sample call]}, rounds interleaved."""
    import subprocess
    root = str(Path(__file__).resolve().parent.parent)
    times = {name: [] for name in names}
    for round_ in range(rounds + 1):  # round 0 fills the caches and is not counted
        for name in names:
            script = FIRST_CALL.format(root=root, model=model, options=CONFIGS[name])
            done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                  text=True, timeout=600, check=True)
            if round_:
                times[name].append(float(done.stdout.split()[-1]))
    return times


def timed(model, options):
    start = time.perf_counter()
    exmc.sample(model, chains=4, num_samples=1000, num_warmup=1000, seed=1, progressbar=False,
                diagnostics=False, **options)
    return time.perf_counter() - start


MODEL_BUILDERS = {"simple": simple, "linear": linear, "logistic": logistic}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="linear", choices=sorted(MODEL_BUILDERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--first-call", action="store_true",
                        help="time a fresh process's first call instead of warm calls")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated, from: " + ",".join(CONFIGS) + " (executor-cores)")
    args = parser.parse_args()
    names = args.configs.split(",")
    if args.first_call:
        report(f"{args.model}, first call of a session", first_calls(args.model, names, args.rounds))
        return
    model = MODEL_BUILDERS[args.model]()
    first = {}
    for name in names:
        if name.startswith("pool"):
            from exmc.runtime import pool
            pool.shutdown()  # the first call of a session starts the pool
        first[name] = timed(model, CONFIGS[name])
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            if name.startswith("pool"):  # pool sizes differ: keep each one warm for its runs
                from exmc.runtime import pool
                if pool._pool is None or pool._pool.size != CONFIGS[name]["cores"]:
                    pool.shutdown()
                    timed(model, CONFIGS[name])
            times[name].append(timed(model, CONFIGS[name]))
    report(args.model, times, first)


def report(what, times, first=None):
    """One line per configuration: median wall time and its ratio to the first configuration."""
    names = list(times)
    base = statistics.median(times[names[0]])
    for name in names:
        median = statistics.median(times[name])
        extra = f"; first call {first[name]:.2f} s" if first else ""
        print(f"{what}, 4 chains x (1000 + 1000), {name}: median {median:.3f} s "
              f"({median / base:.2f}x {names[0]}) over {len(times[name])}{extra}; "
              f"all {', '.join(f'{t:.3f}' for t in times[name])}")


if __name__ == "__main__":
    main()
