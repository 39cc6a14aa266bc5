"""Cost of ``exmc.sample(..., log_likelihood=True)``: sampling with and without the group, same seeds.

    python benchmarks/log_likelihood_overhead.py                 # race models, 1 chain, seeds 1..3
    python benchmarks/log_likelihood_overhead.py --chains 4 --models logistic sv logistic_5k

The group is computed after sampling, from the draws themselves (one call of the compiled
pointwise log-likelihood over all draws), so its cost is added to the call's time.  Three
figures per model, each a median over seeds (and rounds):

- direct: the CPU time of the added work alone (``log_likelihood_dataset`` on the run's
  draws, added to an InferenceData, best of 5) over the CPU time of the ``exmc.sample``
  call without the option (with ``--chains`` above 1: over its wall time, since the
  chains' CPU time is spent in worker processes).
- end to end, CPU: the CPU time of the ``exmc.sample`` call with the option over that
  without (runs interleaved: off and on for one seed, which first alternating, then the
  next seed).  With one chain
  everything runs in this process, so CPU time is the cost the option adds; it is far less
  disturbed than wall time by other work on a shared machine.
- end to end, wall: the same with wall time, less the compile time.  On a loaded machine
  its noise is larger than the effect; with ``--chains 4`` the chains may run in worker
  processes, whose CPU time this process does not see, so there only wall time counts.

Protocol as the race (MODELS.md): 1000 warmup + 1000 draws, target 0.8, the race models
that have observations, and the 5,000 x 50 logistic regression of the scale set.
"""
import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import arviz as az  # noqa: E402

import exmc  # noqa: E402
from benchmarks.models import MODELS, SCALE  # noqa: E402
from exmc.compiler import compile_model  # noqa: E402
from exmc.runtime.predictive import log_likelihood_dataset, log_likelihood_group  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODELS = ["simple", "medium", "stress", "eight_schools", "logistic", "sv", "logistic_5k"]


def build(name):
    return {**MODELS, **SCALE}[name]()


def timed_sample(model, seed, chains, log_likelihood):
    """(wall seconds less compile time, CPU seconds of this process, InferenceData)."""
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = exmc.sample(model, chains=chains, num_samples=1000, num_warmup=1000, seed=seed,
                            progressbar=False, diagnostics=False, log_likelihood=log_likelihood)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - start - idata.attrs["compile_time"]
    return wall, cpu, idata


def direct_cost(model, idata):
    """CPU seconds of the work the option adds, on this run's draws: the group built by
    ``log_likelihood_dataset`` (the compiled pointwise log-likelihood over every draw) and
    added to the InferenceData, as ``exmc.sample`` does.  Best of 5."""
    compiled = compile_model(model)
    values = {v.name: idata.posterior[v.name].values.reshape(
        (-1,) + idata.posterior[v.name].shape[2:]) for v in model.free_variables}
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    points = compiled.pointmap.unconstrain_draws(values).reshape(chains, draws, -1)
    times = []
    for _ in range(5):
        target = az.InferenceData(posterior=idata.posterior)
        start = time.process_time()
        group = log_likelihood_dataset(log_likelihood_group(compiled, points))
        target.add_groups({"log_likelihood": group},
                          warn_on_custom_groups=False)
        times.append(time.process_time() - start)
    return min(times)


def run(names, seeds, rounds, chains):
    rows = []
    for name in names:
        model = build(name)
        timed_sample(model, 0, 1, True)  # compile and warm up
        runs = {"off": [], "on": []}
        direct = []
        for round_ in range(rounds):
            for k, seed in enumerate(seeds):
                # alternate which goes first, so a drift in the machine's speed hits both
                for mode in ("off", "on") if (round_ + k) % 2 == 0 else ("on", "off"):
                    wall, cpu, idata = timed_sample(model, seed, chains, mode == "on")
                    runs[mode].append((wall, cpu))
                wall_off, cpu_off = runs["off"][-1]
                direct.append(direct_cost(model, idata) / (cpu_off if chains == 1 else wall_off))
        wall = {m: statistics.median(w for w, _ in r) for m, r in runs.items()}
        cpu = {m: statistics.median(c for _, c in r) for m, r in runs.items()}
        row = {"model": name, "wall_s_off": wall["off"], "wall_s_on": wall["on"],
               "cpu_s_off": cpu["off"], "cpu_s_on": cpu["on"],
               "wall_overhead": wall["on"] / wall["off"] - 1.0,
               "cpu_overhead": cpu["on"] / cpu["off"] - 1.0,
               "paired_wall_overhead": statistics.median(
                   on[0] / off[0] - 1.0 for off, on in zip(runs["off"], runs["on"])),
               "direct_overhead": statistics.median(direct),
               "direct_overhead_max": max(direct), "runs": len(direct)}
        rows.append(row)
        print(f"{name:14s} wall {row['wall_s_off']:7.3f} -> {row['wall_s_on']:7.3f} s "
              f"({100 * row['wall_overhead']:+6.1f}%)  cpu {row['cpu_s_off']:7.3f} -> "
              f"{row['cpu_s_on']:7.3f} s ({100 * row['cpu_overhead']:+6.1f}%)  direct "
              f"{100 * row['direct_overhead']:5.2f}% (max {100 * row['direct_overhead_max']:.2f}%)",
              flush=True)
    return rows


def write(rows, args):
    RESULTS.mkdir(exist_ok=True)
    stem = "log_likelihood_overhead" + ("" if args.chains == 1 else f"_{args.chains}chains")
    meta = {"command": " ".join(["python", "benchmarks/log_likelihood_overhead.py"] + sys.argv[1:]),
            "chains": args.chains, "seeds": args.seeds, "rounds": args.rounds,
            "machine": platform.platform(), "python": platform.python_version(),
            "exmc": exmc.__version__}
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Cost of log_likelihood=True ({args.chains} chain(s), 1000 + 1000 draws)", "",
             f"`{meta['command']}`; seeds {args.seeds}, {args.rounds} round(s); "
             f"{meta['machine']}.  Medians over runs; direct = the added work's CPU time over "
             f"the sampling call's {'CPU' if args.chains == 1 else 'wall'} time (see the "
             f"script's docstring).", "",
             "| model | wall s off | wall s on | wall | wall, paired | CPU s off | CPU s on | "
             "CPU | direct (median) | direct (max) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['wall_s_off']:.3f} | {r['wall_s_on']:.3f} | "
                     f"{100 * r['wall_overhead']:+.1f}% | "
                     f"{100 * r['paired_wall_overhead']:+.1f}% | "
                     f"{r['cpu_s_off']:.3f} | "
                     f"{r['cpu_s_on']:.3f} | {100 * r['cpu_overhead']:+.1f}% | "
                     f"{100 * r['direct_overhead']:.2f}% | {100 * r['direct_overhead_max']:.2f}% |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--chains", type=int, default=1)
    args = parser.parse_args()
    write(run(args.models, args.seeds, args.rounds, args.chains), args)


if __name__ == "__main__":
    main()
