"""exmc.sample(init="pathfinder") against the default start, by warmup length, on race models.

    python benchmarks/pathfinder_init.py                     # default models, warmups, seeds 1..3
    python benchmarks/pathfinder_init.py --models eight_schools --warmups 50,1000 --seeds 1

For each model, warmup length and seed, both starts run 4 chains in this process with
1000 kept draws, target acceptance 0.8 and Stan's windowed adaptation.  Reported per
(model, warmup, start), medians over seeds: the smallest bulk and tail ESS over every
scalar parameter (ArviZ), the largest R-hat, divergences, the gradient evaluations spent
before the kept draws (warmup leapfrog steps, plus Pathfinder's log density evaluations
for the Pathfinder start) and wall seconds of sampling and of Pathfinder (compilation
excluded).  The question it answers: how much warmup does each start need for the ESS
that the default reaches after Stan's 1000 warmup iterations.
Writes results/pathfinder_init.json and pathfinder_init.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import arviz as az
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import exmc  # noqa: E402
from benchmarks import models  # noqa: E402

MODELS = ("medium", "eight_schools", "logistic", "stress")
WARMUPS = (25, 50, 100, 200, 1000)
CHAINS, DRAWS = 4, 1000


def run(model, warmup, init, seed):
    """One sampling run's figures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        began = time.perf_counter()
        idata = exmc.sample(model, init=init, num_warmup=warmup, num_samples=DRAWS, chains=CHAINS,
                            seed=seed, progressbar=False, save_warmup=True, diagnostics=False,
                            executor="in-process")
        wall = time.perf_counter() - began
        ess_bulk = az.ess(idata, method="bulk")
        ess_tail = az.ess(idata, method="tail")
        rhat = az.rhat(idata)
    smallest = lambda ds: float(min(np.min(v.values) for v in ds.data_vars.values()))  # noqa: E731
    warmup_steps = int(idata.warmup_sample_stats["n_steps"].values.sum()) if warmup else 0
    pathfinder_evaluations = int(idata.attrs.get("pathfinder_evaluations", 0))
    return {"ess_bulk": smallest(ess_bulk), "ess_tail": smallest(ess_tail),
            "rhat": float(max(np.max(v.values) for v in rhat.data_vars.values())),
            "divergences": int(idata.sample_stats["diverging"].values.sum()),
            "warmup_gradients": warmup_steps + pathfinder_evaluations,
            "pathfinder_evaluations": pathfinder_evaluations,
            "pathfinder_pareto_k": idata.attrs.get("pathfinder_pareto_k"),
            "sampling_time": float(idata.attrs["sampling_time"]),
            "pathfinder_time": float(idata.attrs.get("pathfinder_time", 0.0)),
            "wall": wall}


def median_row(runs):
    keys = [k for k in runs[0] if runs[0][k] is not None]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def markdown(results, command):
    lines = [f"# init='pathfinder' against the default start ({results['date']})", "",
             f"Command: `{command}`", "",
             f"Machine: {results['machine']}. {CHAINS} chains in one process, {DRAWS} kept draws, "
             f"seeds {results['seeds']}; medians over seeds. ESS: smallest over every scalar "
             "parameter. Gradients before the kept draws: warmup leapfrog steps, plus "
             "Pathfinder's log density evaluations for its start. Times in seconds, "
             "compilation excluded.", "",
             "| model | warmup | start | bulk ESS | tail ESS | max R-hat | divergences | "
             "gradients before draws | Pathfinder s | sampling s | Pathfinder k |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["rows"]:
        m = row["median"]
        k = m.get("pathfinder_pareto_k")
        lines.append(f"| {row['model']} | {row['warmup']} | {row['init']} | {m['ess_bulk']:.0f} | "
                     f"{m['ess_tail']:.0f} | {m['rhat']:.3f} | {m['divergences']:.0f} | "
                     f"{m['warmup_gradients']:.0f} | {m['pathfinder_time']:.2f} | "
                     f"{m['sampling_time']:.2f} | {'' if k is None else f'{k:.2f}'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--warmups", default=",".join(map(str, WARMUPS)))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", default=str(HERE / "results" / "pathfinder_init"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.models.split(","):
        model = models.MODELS[name]()
        for init in (None, "pathfinder"):  # compile and load everything before timing
            run(model, 10, init, 0)
        for warmup in (int(w) for w in args.warmups.split(",")):
            for init in (None, "pathfinder"):
                runs = [run(model, warmup, init, seed) for seed in seeds]
                row = {"model": name, "warmup": warmup, "init": init or "default",
                       "runs": runs, "median": median_row(runs)}
                rows.append(row)
                m = row["median"]
                print(f"{name:14s} warmup {warmup:5d} {row['init']:10s} bulk ESS {m['ess_bulk']:7.0f} "
                      f"tail {m['ess_tail']:6.0f} rhat {m['rhat']:.3f} grads {m['warmup_gradients']:7.0f}",
                      flush=True)
    command = "python benchmarks/pathfinder_init.py " + " ".join(sys.argv[1:])
    results = {"date": str(date.today()), "machine": f"{platform.machine()}, "
               f"{platform.python_version()}, shared 2-core VM", "seeds": seeds,
               "command": command.strip(), "rows": rows}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results, command.strip()))


if __name__ == "__main__":
    main()
