"""Cost of ``exmc.sample(..., log_likelihood=True)``: sampling with and without the group, same seeds.

    python benchmarks/log_likelihood_overhead.py                 # race models, 1 chain, seeds 1..3
    python benchmarks/log_likelihood_overhead.py --seeds 1 2 3 --rounds 2

The group is computed after sampling, from the draws themselves (one call of the compiled
pointwise log-likelihood over all draws), so its cost is added to the call's wall time.
Two figures per model:

- end to end: the wall time of the ``exmc.sample`` call less its compile time, with and
  without the option, run interleaved (off, on for one seed, then the next seed), median
  over seeds and rounds.  On a shared machine its noise can exceed the effect.
- direct: the time of the added work alone (``log_likelihood_group`` on the run's draws, and
  the difference ArviZ's ``from_dict`` makes with the group and without it) over the wall
  time without the option: the same quantity, measured without the sampler's noise.

Protocol as the race (MODELS.md): 1000 warmup + 1000 draws, target 0.8, the observed
race models and the 5,000 x 50 logistic regression of the scale set; ``--chains 4`` runs
four chains with the default executor (chains in parallel worker processes where the
machine allows, the log-likelihood in the parent after them).
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
import numpy as np  # noqa: E402

import exmc  # noqa: E402
from benchmarks.models import MODELS, SCALE  # noqa: E402
from exmc.compiler import compile_model  # noqa: E402
from exmc.runtime.predictive import log_likelihood_group  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODELS = ["simple", "medium", "stress", "eight_schools", "logistic", "sv", "logistic_5k"]


def build(name):
    return {**MODELS, **SCALE}[name]()


def timed_sample(model, seed, chains, log_likelihood):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = exmc.sample(model, chains=chains, num_samples=1000, num_warmup=1000, seed=seed,
                            progressbar=False, diagnostics=False, log_likelihood=log_likelihood)
    wall = time.perf_counter() - start - idata.attrs["compile_time"]
    return wall, idata


def direct_cost(model, idata):
    """Seconds of the work the option adds, on this run's draws: the compiled pointwise
    log-likelihood over every draw, and one more group in the InferenceData assembled after
    sampling (ArviZ's ``from_dict`` with and without it).  Best of 5 of each."""
    compiled = compile_model(model)
    values = {v.name: idata.posterior[v.name].values.reshape(
        (-1,) + idata.posterior[v.name].shape[2:]) for v in model.free_variables}
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    points = compiled.pointmap.unconstrain_draws(values).reshape(chains, draws, -1)
    groups = {"posterior": {k: v.values for k, v in idata.posterior.items()},
              "sample_stats": {k: v.values for k, v in idata.sample_stats.items()}}

    def best(work):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return min(times)

    kernel = best(lambda: log_likelihood_group(compiled, points))
    group = log_likelihood_group(compiled, points)
    with_group = best(lambda: az.from_dict(**groups, log_likelihood=group))
    without = best(lambda: az.from_dict(**groups))
    return kernel + max(0.0, with_group - without)


def run(names, seeds, rounds, chains):
    rows = []
    for name in names:
        model = build(name)
        timed_sample(model, 0, 1, True)  # compile and warm up
        off, on, direct = [], [], []
        for _ in range(rounds):
            for seed in seeds:
                t_off, idata = timed_sample(model, seed, chains, False)
                t_on, _ = timed_sample(model, seed, chains, True)
                off.append(t_off)
                on.append(t_on)
                direct.append(direct_cost(model, idata) / t_off)
        row = {"model": name, "sample_s_off": statistics.median(off),
               "sample_s_on": statistics.median(on),
               "end_to_end_overhead": statistics.median(on) / statistics.median(off) - 1.0,
               "paired_overhead": statistics.median(b / a - 1.0 for a, b in zip(off, on)),
               "direct_overhead": statistics.median(direct),
               "direct_overhead_max": max(direct), "runs": len(off)}
        rows.append(row)
        print(f"{name:14s} off {row['sample_s_off']:7.3f} s  on {row['sample_s_on']:7.3f} s  "
              f"end to end {100 * row['end_to_end_overhead']:+6.1f}%  paired "
              f"{100 * row['paired_overhead']:+6.1f}%  direct {100 * row['direct_overhead']:5.2f}% "
              f"(max {100 * row['direct_overhead_max']:.2f}%)", flush=True)
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
             f"{meta['machine']}.", "",
             "| model | sample s (off) | sample s (on) | end to end | paired median | "
             "direct (median) | direct (max) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sample_s_off']:.3f} | {r['sample_s_on']:.3f} | "
                     f"{100 * r['end_to_end_overhead']:+.1f}% | {100 * r['paired_overhead']:+.1f}% | "
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
