"""The sampler's cold first compile: CPU seconds in a fresh process with empty caches.

    python benchmarks/sampler_compile.py                   # this checkout, 3 fresh processes
    python benchmarks/sampler_compile.py --root /tmp/old   # another checkout (git archive of a commit)
    python benchmarks/sampler_compile.py --repeats 1 --first-run

Each measurement is a new Python process whose NUMBA_CACHE_DIR and EXMC_CACHE_DIR are new,
empty folders, so Numba compiles the sampler loop (``exmc.samplers.nuts.run_block``) and
everything it calls from nothing, as on a machine's first run.  The figure is CPU time
(``resource.getrusage``), not wall time: the compile is single-threaded, so on an idle
machine wall time is about the same, and CPU time does not depend on what else the machine
is running.  Reported per process: CPU to compile the model (its own functions), CPU to
compile the sampler for it, and the functions whose compile took most CPU (exclusive of the
functions they called, from Numba's compile events).  ``--first-run`` also times a whole
first ``exmc.sample`` (2 chains of 200 + 200, a 2-variable model, the notice on stderr).

Writes results/sampler_compile.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import collections, json, resource, sys, time
    sys.path.insert(0, {root!r})

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    import numpy as np
    from numba.core import event
    import exmc
    from exmc import Builder, HalfNormal, Normal
    from exmc.compiler import compile_model
    from exmc.runtime.chain import make_settings
    from exmc.samplers.nuts import STAT_NAMES, new_chain_state, run_block
    from exmc.samplers.trajectory import make_workspace

    class Exclusive(event.Listener):
        # CPU seconds per compiled function, less the functions compiled inside it
        def __init__(self):
            self.stack, self.seconds = [], collections.Counter()
        def on_start(self, e):
            d = e.data["dispatcher"]
            self.stack.append([d.py_func.__module__ + "." + d.py_func.__qualname__, cpu(), 0.0])
        def on_end(self, e):
            name, start, inner = self.stack.pop()
            total = cpu() - start
            self.seconds[name] += total - inner
            if self.stack:
                self.stack[-1][2] += total

    model = (Builder().rv("mu", Normal(0, 1)).rv("sigma", HalfNormal(1))
             .obs("y", Normal("mu", "sigma"), np.array([0.1, -0.3, 0.5])))
    t = cpu()
    compiled = compile_model(model)
    compiled.constrain(np.zeros((1, compiled.dim)))
    model_s = cpu() - t
    listener = Exclusive()
    event.register("numba:compile", listener)
    settings = make_settings(20)
    dim = compiled.dim
    t = cpu()
    run_block(compiled.address, compiled.data, settings,
              new_chain_state(np.zeros(dim), np.zeros(dim), 0.0, False), np.random.default_rng(0),
              make_workspace(dim, settings.max_tree_depth), 0, np.zeros((0, dim)),
              np.zeros((0, len(STAT_NAMES))))
    sampler_s = cpu() - t
    print(json.dumps({{"model_cpu_s": round(model_s, 2), "sampler_cpu_s": round(sampler_s, 2),
                       "signatures": len(run_block.signatures),
                       "top": [[n, round(s, 2)] for n, s in listener.seconds.most_common(8)]}}))
""")

FIRST_RUN = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    start = time.perf_counter()
    import numpy as np
    import exmc
    from exmc import Builder, HalfNormal, Normal
    model = (Builder().rv("mu", Normal(0, 1)).rv("sigma", HalfNormal(1))
             .obs("y", Normal("mu", "sigma"), np.array([0.1, -0.3, 0.5])))
    idata = exmc.sample(model, chains=2, num_warmup=200, num_samples=200, seed=1, cores=1,
                        diagnostics=False)
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({{"script_cpu_s": round(r.ru_utime + r.ru_stime, 2),
                       "script_wall_s": round(time.perf_counter() - start, 2),
                       "compile_time_attr_s": round(float(idata.attrs["compile_time"]), 2)}}))
""")


def fresh(script, root, timeout=1200):
    """Run ``script`` in a new process with empty Numba and exmc caches; its JSON line, stderr."""
    with tempfile.TemporaryDirectory() as numba_cache, tempfile.TemporaryDirectory() as exmc_cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache, "EXMC_CACHE_DIR": exmc_cache}
        done = subprocess.run([sys.executable, "-c", script.format(root=str(root))], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(HERE.parent), help="checkout to measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-run", action="store_true", help="also time a whole first sample()")
    parser.add_argument("--out", default=str(HERE / "results" / "sampler_compile.json"))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    rows = []
    for i in range(args.repeats):
        row, _ = fresh(CHILD, root)
        rows.append(row)
        print(f"process {i + 1}: sampler {row['sampler_cpu_s']} s CPU, model {row['model_cpu_s']} s;"
              f" most: " + ", ".join(f"{n.split('.')[-1]} {s}" for n, s in row["top"][:4]),
              flush=True)
    result = {"root": str(root), "load_average": os.getloadavg(), "processes": rows,
              "sampler_cpu_s_median": statistics.median(r["sampler_cpu_s"] for r in rows)}
    if args.first_run:
        first, stderr = fresh(FIRST_RUN, root)
        first["notice"] = [line for line in stderr.splitlines() if line.startswith("exmc:")]
        result["first_run"] = first
        print("first run:", first, flush=True)
    print(f"median sampler compile: {result['sampler_cpu_s_median']} s CPU")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
