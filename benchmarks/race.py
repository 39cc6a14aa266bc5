"""The seven-model race: exmc against PyMC and nutpie, one process, same data and protocol.

    python benchmarks/race.py                       # all models, seeds 1..5, every sampler installed
    python benchmarks/race.py --models simple,sv --seeds 1,2 --samplers exmc,nutpie
    python benchmarks/race.py --chains 4            # multi-chain variant (PyMC/nutpie cores=2)
    python benchmarks/race.py --profile             # also: share of exmc's time in the gradient
    python benchmarks/race.py --scale               # the scale set, exmc and nutpie, seeds 1..5
    python benchmarks/race.py --scale --seeds 1 --models logistic_5k,sv_1000

Protocol (../shared/benchmarks/MODELS.md): 1000 warmup + 1000 draws, target acceptance 0.8,
maximum tree depth 10; ESS = min over every scalar parameter of ArviZ bulk ESS; time =
sampling wall seconds without compilation; compile time (time to first draw of a new model)
reported apart; medians over seeds.  Writes results/race.json, race.md and race.png.

``--scale`` races the scale set of benchmarks.models.SCALE instead (logistic regression
5,000 x 50 and 50,000 x 100, a hierarchical model of 1,000 groups and 20,000 observations,
stochastic volatility over 1,000 steps; data made in code from fixed seeds), by default
against nutpie only (PyMC, when asked, only on the models in PYMC_SCALE), and reports per
model exmc's gradient microseconds, gradients per draw in warmup and in sampling, sampling
microseconds per gradient and ESS/s of both.  Writes results/race_scale.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import arviz as az
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.models import MODELS, SCALE  # noqa: E402
from benchmarks.peers import free_names, pymc_model  # noqa: E402

SAMPLERS = ("exmc", "exmc_gradient", "pymc", "nutpie")
LABELS = {"exmc": "exmc", "exmc_gradient": "exmc (gradient adaptation)", "pymc": "PyMC",
          "nutpie": "nutpie"}
ALL_MODELS = {**MODELS, **SCALE}
PYMC_SCALE = {"logistic_5k"}  # the scale models PyMC is cheap enough to run on


def min_bulk_ess(idata, names):
    ess = az.ess(idata, var_names=names, method="bulk")
    return float(min(float(ess[n].min()) for n in names))


def posterior_means(idata, names):
    return {n: np.asarray(idata.posterior[n].mean(("chain", "draw"))).round(4).tolist() for n in names}


def row(idata, names, seconds, steps, divergences):
    ess = min_bulk_ess(idata, names)
    r = {"ess": ess, "seconds": seconds, "ess_per_s": ess / seconds,
         "divergences": int(divergences), "grads_per_draw": float(steps),
         "means": posterior_means(idata, names)}
    warm = getattr(idata, "warmup_sample_stats", None)
    if warm is not None and "n_steps" in warm:
        warmup_steps = float(warm.n_steps.sum())
        total = warmup_steps + float(idata.sample_stats.n_steps.sum())
        r["warmup_grads_per_draw"] = warmup_steps / max(warm.sizes["draw"] * warm.sizes["chain"], 1)
        r["us_per_gradient_sampling"] = 1e6 * seconds / total  # wall time / all evaluations
    return r


# ---- exmc ------------------------------------------------------------------------------
def exmc_new_model_compile(name):
    """Time to first draw of a model new to the cache: a fresh cache directory, in-process."""
    import exmc
    previous = os.environ.get("EXMC_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EXMC_CACHE_DIR"] = tmp
        try:
            idata = exmc.sample(ALL_MODELS[name](), chains=1, num_samples=1, num_warmup=0,
                                progressbar=False)
        finally:
            if previous is None:
                os.environ.pop("EXMC_CACHE_DIR", None)
            else:
                os.environ["EXMC_CACHE_DIR"] = previous
    return idata.attrs["compile_time"]


CACHED_PROBE = """
import time; t0 = time.perf_counter()
import sys; sys.path.insert(0, {root!r})
import exmc
from benchmarks.models import MODELS
t1 = time.perf_counter()
idata = exmc.sample(MODELS[{name!r}](), chains=1, num_samples=1, num_warmup=0, progressbar=False)
print(t1 - t0, idata.attrs["compile_time"])
"""


def exmc_cached_compile(name):
    """(import seconds, time to first draw) of an already cached model in a fresh process."""
    code = CACHED_PROBE.format(root=str(HERE.parent), name=name)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fills the cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    imports, first_draw = map(float, out.stdout.split())
    return imports, first_draw


def run_exmc(name, seed, args, adaptation="stan"):
    import exmc
    idata = exmc.sample(ALL_MODELS[name](), chains=args.chains, num_samples=args.draws,
                        num_warmup=args.warmup, seed=seed, progressbar=False,
                        save_warmup=args.profile or args.scale, adaptation=adaptation)
    stats = idata.sample_stats
    r = row(idata, free_names(name), idata.attrs["sampling_time"], float(stats.n_steps.mean()),
            stats.diverging.sum())
    if args.profile or args.scale:
        r.update(gradient_share(name, idata))
    return r


def gradient_share(name, idata):
    """Share of sampling time spent in the log density + gradient (profile mode)."""
    from exmc.compiler import compile_model
    from exmc.compiler.profile import seconds_per_gradient
    compiled = compile_model(ALL_MODELS[name]())
    post = idata.posterior
    # Time the gradient at posterior draws, through the same function pointer the sampler uses.
    points = np.stack([compiled.pointmap.unconstrain({n: post[n].values[0, k] for n in free_names(name)},
                                                     lambda slot: 0.0)
                       for k in range(0, post.sizes["draw"], max(1, post.sizes["draw"] // 50))])
    per_gradient = seconds_per_gradient(compiled, points)
    evaluations = int(idata.sample_stats.n_steps.sum() + idata.warmup_sample_stats.n_steps.sum())
    return {"gradient_evaluations": evaluations, "seconds_per_gradient": per_gradient,
            "gradient_us": 1e6 * per_gradient,
            "gradient_share": evaluations * per_gradient / idata.attrs["sampling_time"]}


# ---- peers -------------------------------------------------------------------------------
def run_pymc(name, seed, args):
    import pymc as pm
    model = pymc_model(name)
    start = time.perf_counter()
    with model:
        idata = pm.sample(draws=args.draws, tune=args.warmup, chains=args.chains,
                          cores=1 if args.chains == 1 else 2, random_seed=seed,
                          target_accept=0.8, progressbar=False, compute_convergence_checks=False,
                          discard_tuned_samples=not args.scale)
    wall = time.perf_counter() - start
    seconds = float(idata.posterior.attrs["sampling_time"])
    stats = idata.sample_stats
    r = row(idata, free_names(name), seconds, float(stats.n_steps.mean()), stats.diverging.sum())
    r["compile"] = wall - seconds
    return r


_nutpie_compiled = {}


def run_nutpie(name, seed, args):
    import nutpie
    if name not in _nutpie_compiled:
        start = time.perf_counter()
        _nutpie_compiled[name] = (nutpie.compile_pymc_model(pymc_model(name)),
                                  time.perf_counter() - start)
    compiled, compile_seconds = _nutpie_compiled[name]
    start = time.perf_counter()
    idata = nutpie.sample(compiled, draws=args.draws, tune=args.warmup, chains=args.chains,
                          cores=1 if args.chains == 1 else 2, seed=seed, progress_bar=False,
                          save_warmup=True)
    seconds = time.perf_counter() - start
    stats = idata.sample_stats
    r = row(idata, free_names(name), seconds, float(stats.n_steps.mean()), stats.diverging.sum())
    r["compile"] = compile_seconds
    return r


def run_exmc_gradient(name, seed, args):
    return run_exmc(name, seed, args, adaptation="gradient")


RUNNERS = {"exmc": run_exmc, "exmc_gradient": run_exmc_gradient, "pymc": run_pymc,
           "nutpie": run_nutpie}


def available(sampler):
    if sampler.startswith("exmc"):
        return True
    try:
        __import__("pymc" if sampler == "pymc" else "nutpie")
        return True
    except ImportError:
        return False


# ---- report ------------------------------------------------------------------------------
def median(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def summarise(results, samplers):
    table = {}
    for name, per_sampler in results.items():
        entry = {}
        for s in samplers:
            rows = per_sampler.get(s, {}).get("runs", [])
            if not rows:
                continue
            entry[s] = {k: median(rows, k) for k in ("ess", "seconds", "ess_per_s", "divergences",
                                                     "grads_per_draw", "compile", "gradient_share",
                                                     "warmup_grads_per_draw", "gradient_us",
                                                     "us_per_gradient_sampling")}
            entry[s]["means"] = rows[0]["means"]
            entry[s].update({k: v for k, v in per_sampler[s].items() if k != "runs"})
        table[name] = entry
    return table


def fmt(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def markdown(table, meta):
    samplers = [s for s in SAMPLERS if any(s in e for e in table.values())]
    mine = [s for s in samplers if s.startswith("exmc")]
    peers = [s for s in samplers if not s.startswith("exmc")]
    lines = [f"Race of {meta['date']} on {meta['machine']} ({meta['cores']} cores); "
             f"{meta['chains']} chain(s), {meta['warmup']} warmup + {meta['draws']} draws, "
             f"seeds {meta['seeds']}, medians.  Command: `{meta['command']}`", ""]
    if "head" in meta:
        dirty = ", ".join(f.split()[-1] for f in meta["uncommitted_exmc_files"]) or "none"
        lines += [f"Code measured: HEAD {meta['head']}, compiler code version "
                  f"{meta['compiler_code_version']}, uncommitted files under exmc/: {dirty}.", ""]
    head = ["model"] + [f"{LABELS[s]} ESS/s" for s in samplers]
    head += [f"{LABELS[m]} / {LABELS[p]}" for m in mine for p in peers]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in table.items():
        cells = [name] + [fmt(e.get(s, {}).get("ess_per_s")) for s in samplers]
        cells += [fmt(e[m]["ess_per_s"] / e[p]["ess_per_s"]) if m in e and p in e else "-"
                  for m in mine for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["model"] + [f"{LABELS[s]} grads/draw" for s in samplers] + \
        [f"{LABELS[s]} divergences" for s in samplers] + \
        ["exmc compile, new model s", "exmc compile, cached s (fresh process)", "exmc import s"] + \
        [f"{LABELS[p]} compile s" for p in peers]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in table.items():
        ex = e.get("exmc", {})
        cells = [name] + [fmt(e.get(s, {}).get("grads_per_draw")) for s in samplers]
        cells += [fmt(e.get(s, {}).get("divergences")) for s in samplers]
        cells += [fmt(ex.get("compile_new")), fmt(ex.get("compile_cached")),
                  fmt(ex.get("import_seconds"))]
        cells += [fmt(e.get(p, {}).get("compile")) for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    shares = {n: e.get(s, {}).get("gradient_share") for n, e in table.items() for s in mine}
    if any(v is not None for v in shares.values()):
        head = ["model"] + [f"{LABELS[s]}: share of sampling time in the gradient" for s in mine]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, e in table.items():
            lines.append("| " + " | ".join([name] + [fmt(e.get(s, {}).get("gradient_share"))
                                                     for s in mine]) + " |")
    return "\n".join(lines) + "\n"


def scale_markdown(table, results, samplers):
    """The scale set's per-model figures: gradient cost, gradients per draw, ESS/s."""
    peers = [s for s in samplers if not s.startswith("exmc")]
    head = ["model", "d", "exmc gradient µs", "exmc µs per gradient in sampling"] + \
        [f"{LABELS[p]} µs per gradient in sampling" for p in peers] + \
        ["exmc grads/draw warmup", "exmc grads/draw sampling"] + \
        [f"{LABELS[p]} grads/draw {w}" for p in peers for w in ("warmup", "sampling")] + \
        ["exmc ESS/s"] + [f"{LABELS[p]} ESS/s" for p in peers] + \
        [f"exmc / {LABELS[p]}" for p in peers] + ["exmc seconds"] + \
        [f"{LABELS[p]} seconds" for p in peers] + ["exmc compile s (new model, in-process)"] + \
        [f"{LABELS[p]} compile s" for p in peers]
    lines = ["", "Scale set: µs per gradient in sampling = sampling wall seconds / all gradient "
             "evaluations (warmup + draws), the whole cost of one leapfrog step; exmc gradient µs "
             "= `exmc.compiler.profile.seconds_per_gradient` at posterior draws, the model alone.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in table.items():
        ex = e.get("exmc", {})
        dim = sum(int(np.size(v)) for v in ex.get("means", {}).values()) or None
        cells = [name, fmt(dim), fmt(ex.get("gradient_us")), fmt(ex.get("us_per_gradient_sampling"))]
        cells += [fmt(e.get(p, {}).get("us_per_gradient_sampling")) for p in peers]
        cells += [fmt(ex.get("warmup_grads_per_draw")), fmt(ex.get("grads_per_draw"))]
        cells += [fmt(e.get(p, {}).get(k)) for p in peers
                  for k in ("warmup_grads_per_draw", "grads_per_draw")]
        cells += [fmt(ex.get("ess_per_s"))] + [fmt(e.get(p, {}).get("ess_per_s")) for p in peers]
        cells += [fmt(ex["ess_per_s"] / e[p]["ess_per_s"]) if ex.get("ess_per_s") and
                  e.get(p, {}).get("ess_per_s") else "-" for p in peers]
        cells += [fmt(ex.get("seconds"))] + [fmt(e.get(p, {}).get("seconds")) for p in peers]
        cells += [fmt(ex.get("compile_new"))] + [fmt(e.get(p, {}).get("compile")) for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    for name, per_sampler in results.items():
        for s, entry in per_sampler.items():
            if "error" in entry:
                lines += ["", f"{name} / {LABELS[s]} failed:", "```", entry["error"], "```"]
    return "\n".join(lines) + "\n"


def bar_chart(table, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(table)
    pairs = [(m, p) for m in ("exmc", "exmc_gradient") for p in ("pymc", "nutpie")
             if any(m in e and p in e for e in table.values())]
    if not pairs:
        return False
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(pairs), 1)
    for k, (m, p) in enumerate(pairs):
        ratios = [table[n][m]["ess_per_s"] / table[n][p]["ess_per_s"]
                  if m in table[n] and p in table[n] else np.nan for n in names]
        ax.bar(np.arange(len(names)) + (k - (len(pairs) - 1) / 2) * width, ratios, width,
               label=f"{LABELS[m]} / {LABELS[p]}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), names, rotation=20)
    ax.set_ylabel("ESS/s ratio (median over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None,
                        help="comma-separated; default: the seven (with --scale: the scale set)")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--samplers", default=None,
                        help=f"default: {','.join(SAMPLERS)} (with --scale: exmc,nutpie)")
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="measure exmc's gradient share")
    parser.add_argument("--scale", action="store_true",
                        help="race the scale set (benchmarks.models.SCALE) against nutpie")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ",".join(SCALE if args.scale else MODELS)
    if args.samplers is None:
        args.samplers = "exmc,nutpie" if args.scale else ",".join(SAMPLERS)
    models = args.models.split(",")
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(ALL_MODELS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    samplers = [s for s in args.samplers.split(",") if available(s)]
    skipped = set(args.samplers.split(",")) - set(samplers)
    if skipped:
        print(f"not installed, skipped: {', '.join(sorted(skipped))} (pip install -e '.[bench]')")
    if any(s.startswith("exmc") for s in samplers):
        # Compile or load the sampler itself once, so "new model" times only the model.
        import exmc
        exmc.sample(exmc.Builder().rv("warm", exmc.Normal(0, 1)), chains=1, num_samples=1,
                    num_warmup=1, progressbar=False)
    results = {}
    for name in models:
        results[name] = {}
        for sampler in samplers:
            if sampler == "pymc" and name in SCALE and name not in PYMC_SCALE:
                print(f"{name:14s} pymc skipped (too slow at this size)", flush=True)
                continue
            entry = {"runs": []}
            try:
                if sampler == "exmc":
                    entry["compile_new"] = exmc_new_model_compile(name)
                    if not args.scale:
                        entry["import_seconds"], entry["compile_cached"] = exmc_cached_compile(name)
            except Exception as err:  # report the model exmc could not compile, race the rest
                entry["error"] = f"{type(err).__name__}: {err}"
                print(f"{name:14s} {sampler:7s} FAILED: {entry['error']}", flush=True)
                results[name][sampler] = entry
                continue
            for seed in seeds:
                try:
                    r = RUNNERS[sampler](name, seed, args)
                except Exception as err:
                    entry["error"] = f"{type(err).__name__}: {err}"
                    print(f"{name:14s} {sampler:7s} seed {seed} FAILED: {entry['error']}",
                          flush=True)
                    break
                entry["runs"].append(r)
                print(f"{name:14s} {sampler:7s} seed {seed}: ESS {r['ess']:7.0f}  "
                      f"{r['seconds']:7.3f} s  ESS/s {r['ess_per_s']:9.0f}  div {r['divergences']}",
                      flush=True)
            results[name][sampler] = entry
    table = summarise(results, samplers)
    meta = {"date": date.today().isoformat(), "machine": platform.machine(),
            "cores": os.cpu_count(), "chains": args.chains, "draws": args.draws,
            "warmup": args.warmup, "seeds": args.seeds,
            "command": "python benchmarks/race.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.scale:
        from benchmarks.compile_time import code_state
        meta.update(code_state())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "race" if args.chains == 1 else f"race_{args.chains}chains"
    if args.scale:
        stem = stem.replace("race", "race_scale")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "summary": table, "runs": results},
                                                indent=1))
    text = markdown(table, meta)
    if args.scale:
        text += scale_markdown(table, results, samplers)
    (out / f"{stem}.md").write_text(text)
    bar_chart(table, out / f"{stem}.png")
    print()
    print(text)
    print("posterior means (exmc vs PyMC):")
    for name, e in table.items():
        if "exmc" in e and "pymc" in e:
            for var, v in e["exmc"]["means"].items():
                print(f"  {name}.{var}: exmc {v}  pymc {e['pymc']['means'][var]}")
    return table


if __name__ == "__main__":
    main()
