"""ADVI and Pathfinder beside NUTS and PyMC's ADVI: time and accuracy on race models.

    python benchmarks/approximate.py                          # logistic, stress, eight_schools; seeds 1,2
    python benchmarks/approximate.py --models logistic --seeds 1

Accuracy is against a long NUTS reference run of the same model (exmc, 4 chains x 5,000
draws after 1,000 warmup, seed 0): for every scalar of every sampled variable (constrained
scale), the error of the method's posterior mean in reference sds and the ratio of its sd
to the reference sd; reported are the largest mean error and the smallest and median sd
ratio.  Each method's draws: 4,000 (NUTS: 4 chains x 1,000 after 1,000 warmup; the
approximations: 4,000 draws of the fitted approximation).  Times are wall seconds of the
fit and the draws, exmc's compilation excluded (a warm-up call first); PyMC's ``pm.fit``
(default ``n=10000``, ``method="advi"`` or ``"fullrank_advi"``) is timed as called,
its PyTensor compilation included (a second call compiles again).  Medians over seeds.
Writes results/approximate.json and approximate.md.
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import exmc  # noqa: E402
from benchmarks import models  # noqa: E402

MODELS = ("logistic", "stress", "eight_schools")
DRAWS = 4000


def scalars(posterior, names):
    """(draws, k) matrix of every scalar of ``names`` from an xarray posterior."""
    columns = []
    for name in names:
        v = np.asarray(posterior[name].values)
        columns.append(v.reshape(v.shape[0] * v.shape[1], -1))
    return np.hstack(columns)


def accuracy(draws, reference):
    ref_mean, ref_sd = reference.mean(0), reference.std(0)
    errors = np.abs(draws.mean(0) - ref_mean) / ref_sd
    ratios = draws.std(0) / ref_sd
    return {"max_mean_error_sd": float(errors.max()), "min_sd_ratio": float(ratios.min()),
            "median_sd_ratio": float(np.median(ratios)), "max_sd_ratio": float(ratios.max())}


def exmc_methods(model, seed):
    """{method: (posterior, seconds, gradient evaluations, pareto k)} for exmc's methods."""
    out = {}
    began = time.perf_counter()
    idata = exmc.sample(model, num_warmup=1000, num_samples=1000, chains=4, seed=seed,
                        progressbar=False, diagnostics=False, save_warmup=True,
                        executor="in-process")
    seconds = float(idata.attrs["sampling_time"])
    grads = int(idata.sample_stats["n_steps"].values.sum()
                + idata.warmup_sample_stats["n_steps"].values.sum())
    out["exmc NUTS"] = (idata.posterior, seconds, grads, None)
    for method in ("advi", "fullrank_advi"):
        began = time.perf_counter()
        approx = exmc.fit(model, method=method, seed=seed, progressbar=False)
        draws = approx.sample(DRAWS, seed=seed)
        out[f"exmc {method}"] = (draws.posterior, time.perf_counter() - began,
                                 int(approx.elbo.size), draws.attrs["pareto_k"])
    began = time.perf_counter()
    idata = exmc.pathfinder(model, num_draws=DRAWS, seed=seed, progressbar=False)
    out["exmc pathfinder"] = (idata.posterior, time.perf_counter() - began,
                              int(sum(idata.attrs["evaluations"])), idata.attrs["pareto_k"])
    return out


def pymc_methods(name, seed):
    import pymc as pm

    from benchmarks.peers import pymc_model

    out = {}
    for method in ("advi", "fullrank_advi"):
        model = pymc_model(name)
        began = time.perf_counter()
        with model:
            approx = pm.fit(method=method, random_seed=seed, progressbar=False)
            idata = approx.sample(DRAWS, random_seed=seed)
        out[f"PyMC {method}"] = (idata.posterior, time.perf_counter() - began, 10_000, None)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out", default=str(HERE / "results" / "approximate"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.models.split(","):
        model = models.MODELS[name]()
        names = [s.name for s in exmc.compiler.compile_model(model).pointmap.free]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = exmc.sample(model, num_warmup=1000, num_samples=5000, chains=4, seed=0,
                                    progressbar=False, diagnostics=False, executor="in-process")
            reference = scalars(reference.posterior, names)
            exmc_methods(model, 0)  # compile and load everything before timing
            per_seed = {}
            for seed in seeds:
                found = exmc_methods(model, seed)
                try:
                    found.update(pymc_methods(name, seed))
                except ImportError:
                    pass
                for method, (posterior, seconds, grads, k) in found.items():
                    entry = {"seconds": seconds, "gradients": grads, "pareto_k": k,
                             **accuracy(scalars(posterior, names), reference)}
                    per_seed.setdefault(method, []).append(entry)
        for method, runs in per_seed.items():
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]
                      if runs[0][key] is not None}
            rows.append({"model": name, "method": method, "runs": runs, "median": median})
            m = median
            print(f"{name:14s} {method:20s} {m['seconds']:7.2f} s  mean err {m['max_mean_error_sd']:.2f} sd  "
                  f"sd ratio {m['min_sd_ratio']:.2f}..{m['max_sd_ratio']:.2f}", flush=True)
    command = ("python benchmarks/approximate.py " + " ".join(sys.argv[1:])).strip()
    results = {"date": str(date.today()), "machine": f"{platform.machine()}, Python "
               f"{platform.python_version()}, shared 2-core VM", "seeds": seeds,
               "command": command, "rows": rows}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [f"# ADVI and Pathfinder beside NUTS and PyMC's ADVI ({results['date']})", "",
             f"Command: `{command}`", "", f"Machine: {results['machine']}; seeds {seeds}, "
             "medians over seeds. Accuracy against a 20,000-draw exmc NUTS reference: largest "
             "error of a posterior mean in reference sds, smallest / median / largest ratio of "
             "sds, over every scalar parameter. Gradients: NUTS leapfrog steps (warmup "
             "included), ADVI iterations (one draw each), Pathfinder log density evaluations; "
             "PyMC's ADVI runs its default 10,000 iterations. Seconds: exmc's compilation "
             "excluded, PyMC's PyTensor compilation included.", "",
             "| model | method | seconds | gradients | max mean error (sd) | sd ratio min / median / max | Pareto k |",
             "|---|---|---:|---:|---:|---|---:|"]
    for row in rows:
        m = row["median"]
        k = m.get("pareto_k")
        lines.append(f"| {row['model']} | {row['method']} | {m['seconds']:.2f} | {m['gradients']:.0f} | "
                     f"{m['max_mean_error_sd']:.2f} | {m['min_sd_ratio']:.2f} / "
                     f"{m['median_sd_ratio']:.2f} / {m['max_sd_ratio']:.2f} | "
                     f"{'' if k is None else f'{k:.2f}'} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
