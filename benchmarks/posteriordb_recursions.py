"""Recursion and ODE models (examples/arma.py, garch.py, hmm.py, lotka_volterra.py, pharmacokinetics.py)
against posteriordb's reference posteriors, in units of Monte Carlo standard error.

For each posterior: sample the example's model with exmc, then for every
parameter z = (exmc mean - reference mean) / sqrt(MCSE_exmc^2 + MCSE_ref^2) and
the ratio of posterior standard deviations.  The references are posteriordb's
Stan draws (10 chains of 1,000 thinned draws each, ``reference_posteriors/draws``);
their means, standard deviations and effective sample sizes, and the data, are
kept in ``benchmarks/data/posteriordb_recursions.json``, made from a posteriordb
checkout by ``--extract``.

    python benchmarks/posteriordb_recursions.py [--draws 2000 --warmup 1000 --chains 4 --seed 1]
    python benchmarks/posteriordb_recursions.py --extract /path/to/posteriordb   # refresh the data file

Results: ``benchmarks/results/posteriordb_recursions.{json,md}``.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import arviz as az
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import reference_report  # noqa: E402

ROOT = Path(__file__).parent.parent
DATA = ROOT / "benchmarks" / "data" / "posteriordb_recursions.json"
RESULTS = ROOT / "benchmarks" / "results"
QUANTILES = (0.05, 0.5, 0.95)
# posterior name -> (example module, posteriordb data set)
POSTERIORS = {
    "arma-arma11": ("arma", "arma"),
    "garch-garch11": ("garch", "garch"),
    "hmm_example-hmm_example": ("hmm", "hmm_example"),
    "hudson_lynx_hare-lotka_volterra": ("lotka_volterra", "hudson_lynx_hare"),
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": ("pharmacokinetics", "one_comp_mm_elim_abs"),
}
# rows of the comparison: (label, posterior, the example's model function)
RUNS = [(name, name, "model") for name in POSTERIORS] + [
    ("one_comp_mm_elim_abs (rotated)", "one_comp_mm_elim_abs-one_comp_mm_elim_abs", "model_rotated")]


def example(module):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


# ---- the data file ---------------------------------------------------------------------------
def _git_json(repo, path):
    raw = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True,
                         capture_output=True).stdout
    if path.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            raw = z.read(z.namelist()[0])
    return json.loads(raw)


def extract(repo, posteriors=None, data_file=DATA):
    """Write the data file (``data_file``) of ``posteriors`` ({posterior: (model, data name)},
    by default this module's) from a posteriordb git checkout at ``repo``."""
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    base = "posterior_database"
    out = {"source": f"posteriordb (github.com/stan-dev/posteriordb) commit {commit}: "
                     f"{base}/data/data/<data>.json.zip and "
                     f"{base}/reference_posteriors/draws/draws/<posterior>.json.zip; "
                     "reference summaries computed here from all reference draws "
                     "(ess: ArviZ ESS of the mean over the 10 chains; quantiles: [value, ArviZ MCSE])",
           "posteriors": {}}
    for name, (_, data_name) in (posteriors or POSTERIORS).items():
        data = _git_json(repo, f"{base}/data/data/{data_name}.json.zip")
        chains = _git_json(repo, f"{base}/reference_posteriors/draws/draws/{name}.json.zip")
        reference = {}
        for param in chains[0]:
            draws = np.array([c[param] for c in chains], dtype=float)
            reference[param] = {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1)),
                                "ess": float(az.ess(draws, method="mean")),
                                "quantiles": {str(q): [float(np.quantile(draws, q)),
                                                       float(az.mcse(draws, method="quantile", prob=q))]
                                              for q in QUANTILES}}
        out["posteriors"][name] = {"data": data, "reference": reference,
                                   "stan_model": f"{base}/models/stan/{name.split('-', 1)[1]}.stan"}
    data_file.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {data_file}")


# ---- the comparison --------------------------------------------------------------------------
def compare(values, reference):
    """(z, sd ratio, exmc mean, exmc MCSE) of one parameter's draws (chains, draws) against its reference."""
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    mcse = sd / np.sqrt(float(az.ess(values, method="mean")))
    ref_mcse = reference["sd"] / np.sqrt(reference["ess"])
    return (mean - reference["mean"]) / np.hypot(mcse, ref_mcse), sd / reference["sd"], mean, mcse


def compare_quantiles(values, reference):
    """{q: z} of the 5%, 50% and 95% quantiles, each in units of both runs' quantile MCSE.

    Robust where a heavy tail makes the mean's MCSE (and the sd) unreliable.
    """
    out = {}
    for q, (ref_value, ref_mcse) in reference["quantiles"].items():
        mcse = float(az.mcse(values, method="quantile", prob=float(q)))
        out[q] = (float(np.quantile(values, float(q))) - ref_value) / np.hypot(mcse, ref_mcse)
    return out


def gradient_microseconds(model, repeats=2000):
    """Median time of one log density and gradient at a random point (a ctypes call: ~1 us of it)."""
    from exmc.compiler import compile_model
    cm = compile_model(model)
    x = np.random.default_rng(0).normal(scale=0.1, size=cm.dim)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            cm.logp_and_grad(x)
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return float(np.median(times))


def run(name, function, draws, warmup, chains, seed):
    import exmc
    entry = json.loads(DATA.read_text())["posteriors"][name]
    module = example(POSTERIORS[name][0])
    model = getattr(module, function)(entry["data"])
    start = time.perf_counter()
    idata = exmc.sample(model, num_samples=draws, num_warmup=warmup, chains=chains, seed=seed,
                        progressbar=False)
    seconds = time.perf_counter() - start
    rows = {}
    for label, values in module.parameters(idata).items():
        z, ratio, mean, mcse = compare(np.asarray(values), entry["reference"][label])
        rows[label] = {"z": z, "sd_ratio": ratio, "mean": mean, "mcse": mcse,
                       "quantile_z": compare_quantiles(np.asarray(values), entry["reference"][label]),
                       "reference_mean": entry["reference"][label]["mean"],
                       "reference_sd": entry["reference"][label]["sd"]}
    stats = idata.sample_stats
    return {"parameters": rows, "seconds": seconds, "gradient_us": gradient_microseconds(model),
            "divergences": int(stats["diverging"].values.sum()),
            "min_ess": float(min(az.ess(np.asarray(v)) for v in module.parameters(idata).values()))}


def report(results, args):
    lines = ["# Recursion and ODE models against posteriordb reference posteriors", "",
             f"Command: `python benchmarks/posteriordb_recursions.py --draws {args.draws} "
             f"--warmup {args.warmup} --chains {args.chains} --seed {args.seed}` "
             "(shared 2-core machine; seconds include compiling).", "",
             "z = (exmc mean - reference mean) / sqrt(MCSE_exmc^2 + MCSE_ref^2); "
             "sd ratio = exmc sd / reference sd.", "",
             "z of the 5%, 50% and 95% quantiles: the same with each run's quantile MCSE.", "",
             "Gradient: median microseconds of one log density and gradient (a ctypes call).", "",
             "| posterior | worst abs z (mean) | worst abs z (quantiles) | worst sd ratio "
             "| divergences | min ESS | seconds | gradient (us) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        zs = [p["z"] for p in r["parameters"].values()]
        qs = [z for p in r["parameters"].values() for z in p["quantile_z"].values()]
        ratios = [p["sd_ratio"] for p in r["parameters"].values()]
        worst = max(ratios, key=lambda x: abs(np.log(x)))
        lines.append(f"| {name} | {max(abs(z) for z in zs):.2f} | {max(abs(z) for z in qs):.2f} "
                     f"| {worst:.3f} | {r['divergences']} | {r['min_ess']:.0f} | {r['seconds']:.0f} "
                     f"| {r['gradient_us']:.1f} |")
    lines += ["", *reference_report.parameter_table(results)]
    source = json.loads(DATA.read_text())["source"]
    lines += ["", f"Reference: {source}."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=[label for label, _, _ in RUNS],
                        help="row labels (posterior names)")
    parser.add_argument("--extract", metavar="POSTERIORDB", help="refresh the data file and stop")
    args = parser.parse_args()
    if args.extract:
        return extract(Path(args.extract))
    results = {}
    for label, name, function in RUNS:
        if label not in args.only:
            continue
        results[label] = run(name, function, args.draws, args.warmup, args.chains, args.seed)
        print(label, json.dumps({k: round(v["z"], 2) for k, v in results[label]["parameters"].items()}),
              f"{results[label]['seconds']:.0f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if len(results) == len(RUNS) else "_partial"
    (RESULTS / f"posteriordb_recursions{suffix}.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / f"posteriordb_recursions{suffix}.md").write_text(report(results, args))


if __name__ == "__main__":
    main()
