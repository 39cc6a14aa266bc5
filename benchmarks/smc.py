"""exmc.sample_smc beside PyMC's pm.sample_smc: wall time and log evidence against exact values.

    python benchmarks/smc.py                 # seeds 1..3, 4 chains of 2,000 particles
    python benchmarks/smc.py --seeds 1 --draws 1000
    python benchmarks/smc.py --calibrate     # the error bars used by tests/samplers/test_smc.py
    python benchmarks/smc.py --dimensions 10,50   # the kernels as the dimension grows

Models with a known evidence: the conjugate normal-normal (closed form), the
beta-binomial (closed form) and eight schools, centred, tau ~ HalfNormal(5)
(mu and theta integrated out in closed form, tau by quadrature).  Both libraries
run 4 chains in this process, the IMH kernel (both defaults), threshold 0.5;
PyMC with cores=1 (one chain after another), exmc with its default threads
(min(chains, CPUs)).  exmc's first call includes compiling the model and its
prior model into an empty model cache (EXMC_CACHE_DIR is a new folder; the SMC
kernels are loaded from Numba's cache, filled by a throwaway run first); "warm"
is a second call with another seed.  PyMC's time is one call
(it compiles its log densities each call).  The log evidence is each library's
combined estimate log(mean_c Z_c) over chains.

Writes results/smc.json and results/smc.md.

``--calibrate`` checks exmc's error bars instead (results/smc_calibration.md): over 40
seeds of 4 chains x 1,000 particles of the normal-normal model, the z-scores of the
posterior mean and variance with the duplication ESS of the tests (sd near 1 if the
MCSE is right); and over 64 chains x 1,000 particles of each model, the mean and sd of
the per-chain log evidence against the exact value.

``--dimensions`` runs each kernel on a Bayesian linear regression with d coefficients
(b ~ N(0, I), y ~ N(X b, I), 100 observations; exact evidence y ~ N(0, I + X X^T)),
4 chains x 1,000 particles (results/smc_dimensions.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import integrate, special, stats

HERE = Path(__file__).resolve().parent
NN_Y = np.random.default_rng(101).normal(3.0, 1.5, size=20)
BB_N, BB_K = np.array([10.0, 12.0, 8.0]), np.array([3.0, 5.0, 2.0])
SCHOOLS_Y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
SCHOOLS_SIGMA = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])


def exact_log_evidence(name):
    if name == "normal_normal":
        n = NN_Y.size
        cov = 1.5 ** 2 * np.eye(n) + 4.0 * np.ones((n, n))
        return float(stats.multivariate_normal(np.ones(n), cov).logpdf(NN_Y))
    if name == "beta_binomial":
        return float(np.sum(np.log(special.comb(BB_N, BB_K))) + special.betaln(2 + BB_K.sum(), 3 + (
            BB_N - BB_K).sum()) - special.betaln(2.0, 3.0))

    def density(tau):
        cov = np.diag(SCHOOLS_SIGMA ** 2 + tau ** 2) + 25.0
        return (stats.halfnorm(scale=5.0).pdf(tau)
                * stats.multivariate_normal(np.zeros(8), cov).pdf(SCHOOLS_Y))
    return float(np.log(integrate.quad(density, 0, np.inf)[0]))


def exmc_model(name):
    from exmc import Beta, Binomial, Builder, HalfNormal, Normal
    if name == "normal_normal":
        return Builder().rv("mu", Normal(1.0, 2.0)).obs("y", Normal("mu", 1.5), NN_Y)
    if name == "beta_binomial":
        return Builder().rv("p", Beta(2.0, 3.0)).obs("k", Binomial(BB_N, "p"), BB_K)
    return (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
            .rv("theta", Normal("mu", "tau", shape=8)).obs("y", Normal("theta", SCHOOLS_SIGMA),
                                                            SCHOOLS_Y))


def pymc_model(name):
    import pymc as pm
    with pm.Model() as model:
        if name == "normal_normal":
            mu = pm.Normal("mu", 1.0, 2.0)
            pm.Normal("y", mu, 1.5, observed=NN_Y)
        elif name == "beta_binomial":
            p = pm.Beta("p", 2.0, 3.0)
            pm.Binomial("k", BB_N.astype(int), p, observed=BB_K.astype(int))
        else:
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfNormal("tau", 5.0)
            theta = pm.Normal("theta", mu, tau, shape=8)
            pm.Normal("y", theta, SCHOOLS_SIGMA, observed=SCHOOLS_Y)
    return model


def combined(log_evidences):
    values = np.asarray(log_evidences, dtype=float)
    top = values.max()
    return float(top + np.log(np.mean(np.exp(values - top))))


def run_exmc(name, draws, chains, seed):
    import exmc
    model = exmc_model(name)
    start = time.perf_counter()
    idata = exmc.sample_smc(model, draws=draws, chains=chains, seed=seed, progressbar=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    exmc.sample_smc(model, draws=draws, chains=chains, seed=seed + 1000, progressbar=False)
    warm = time.perf_counter() - start
    stats_ = idata.sample_stats
    return {"seconds_first": first, "seconds_warm": warm,
            "log_evidence": stats_.attrs["log_marginal_likelihood"],
            "log_evidence_se": stats_.attrs["log_marginal_likelihood_se"],
            "stages": int(np.isfinite(stats_["beta"].values).sum(axis=1).max())}


def run_pymc(name, draws, chains, seed):
    import pymc as pm
    model = pymc_model(name)
    start = time.perf_counter()
    with model:
        idata = pm.sample_smc(draws=draws, chains=chains, cores=1, random_seed=seed,
                              progressbar=False, compute_convergence_checks=False)
    seconds = time.perf_counter() - start
    lml = np.asarray(idata.sample_stats["log_marginal_likelihood"].values, dtype=object)
    per_chain = []
    for row in lml.reshape(chains, -1):  # each entry: the stages' values, NaN until beta = 1
        last = np.asarray(row[-1], dtype=float).ravel()
        per_chain.append(float(last[np.isfinite(last)][-1]))
    return {"seconds": seconds, "log_evidence": combined(per_chain)}


def particle_ess(draws):
    """tests/samplers/test_smc.py's duplication ESS: per chain N^2 / sum n_k^2, summed."""
    total = 0.0
    for chain in draws.reshape(draws.shape[0], draws.shape[1], -1):
        _, counts = np.unique(chain, axis=0, return_counts=True)
        total += len(chain) ** 2 / np.sum(counts.astype(float) ** 2)
    return total


def calibrate():
    import exmc
    lines = ["# SMC error bars (`python benchmarks/smc.py --calibrate`)", "",
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
             f"{platform.platform()}", "",
             "Posterior moments of the normal-normal model, 40 seeds x 4 chains x 1,000 "
             "particles; z = (estimate - exact) / (sd / sqrt(duplication ESS)):", "",
             "| kernel | mean ESS | z(mean): mean, sd, max abs | z(variance): mean, sd, max abs |",
             "|---|---|---|---|"]
    precision = 1 / 4 + NN_Y.size / 1.5 ** 2
    mean, var = (1 / 4 + NN_Y.sum() / 1.5 ** 2) / precision, 1 / precision
    for kernel in ("imh", "mh", "hmc"):
        scores, sizes = [], []
        for seed in range(40):
            mu = exmc.sample_smc(exmc_model("normal_normal"), draws=1000, chains=4, seed=seed,
                                 kernel=kernel, progressbar=False).posterior["mu"].values
            ess = particle_ess(mu)
            sizes.append(ess)
            scores.append([(f.mean() - t) / (f.std() / np.sqrt(ess))
                           for f, t in ((mu, mean), ((mu - mean) ** 2, var))])
        z = np.array(scores)
        lines.append(f"| {kernel} | {np.mean(sizes):.0f} | " + " | ".join(
            f"{z[:, k].mean():.2f}, {z[:, k].std():.2f}, {np.abs(z[:, k]).max():.2f}"
            for k in range(2)) + " |")
    lines += ["", "Per-chain log evidence, 64 chains x 1,000 particles (seed 2):", "",
              "| model | kernel | exact | mean - exact | sd | z of the mean |",
              "|---|---|---|---|---|---|"]
    for name in ("normal_normal", "beta_binomial", "eight_schools"):
        exact = exact_log_evidence(name)
        for kernel in ("imh", "mh", "hmc"):
            idata = exmc.sample_smc(exmc_model(name), draws=1000, chains=64, seed=2,
                                    kernel=kernel, progressbar=False)
            values = idata.sample_stats["log_marginal_likelihood"].values
            error, sd = values.mean() - exact, values.std(ddof=1)
            lines.append(f"| {name} | {kernel} | {exact:.3f} | {error:+.4f} | {sd:.4f} | "
                         f"{error / (sd / 8):+.2f} |")
    (HERE / "results" / "smc_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def dimensions(sizes):
    import exmc
    from exmc import Builder, Normal, ref
    lines = [f"# SMC kernels against dimension (`python benchmarks/smc.py --dimensions "
             f"{','.join(map(str, sizes))}`)", "",
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, {platform.platform()}, "
             f"load average {os.getloadavg()[0]:.1f} (a shared machine: times are rough)", "",
             "Linear regression, b ~ N(0, I_d), y ~ N(X b, I), 100 observations, 4 chains x 1,000 "
             "particles, seed 1; seconds include compiling the model once per d.", "",
             "| d | kernel | exact log Z | estimate | per-chain sd | stages | mean steps | "
             "acceptance | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for d in sizes:
        X = rng.normal(size=(100, d))
        y = X @ rng.normal(size=d) * 0.5 + rng.normal(size=100)
        model = Builder().rv("b", Normal(0.0, 1.0, shape=d)).obs("y", Normal(X @ ref("b"), 1.0), y)
        exact = stats.multivariate_normal(np.zeros(100), np.eye(100) + X @ X.T).logpdf(y)
        for kernel in ("imh", "mh", "hmc"):
            start = time.perf_counter()
            idata = exmc.sample_smc(model, draws=1000, chains=4, seed=1, kernel=kernel,
                                    progressbar=False)
            seconds = time.perf_counter() - start
            s = idata.sample_stats
            steps = s["n_steps"].values
            lines.append(
                f"| {d} | {kernel} | {exact:.3f} | {s.attrs['log_marginal_likelihood']:.3f} | "
                f"{s['log_marginal_likelihood'].values.std(ddof=1):.3f} | "
                f"{int(np.isfinite(s['beta'].values).sum(axis=1).max())} | "
                f"{steps[steps > 0].mean():.1f} | {np.nanmean(s['acceptance_rate'].values):.2f} | "
                f"{seconds:.1f} |")
            print(lines[-1], flush=True)
    (HERE / "results" / "smc_dimensions.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--models", default="normal_normal,beta_binomial,eight_schools")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--dimensions", default="")
    args = parser.parse_args()
    if args.calibrate:
        return calibrate()
    if args.dimensions:
        return dimensions([int(d) for d in args.dimensions.split(",")])
    seeds = [int(s) for s in args.seeds.split(",")]
    os.environ["EXMC_CACHE_DIR"] = tempfile.mkdtemp(prefix="exmc_smc_bench_")
    load = os.getloadavg()[0]
    import exmc
    from exmc import Builder, HalfNormal, Normal  # a throwaway model, none of the measured ones,
    throwaway = (Builder().rv("s", HalfNormal(1.0))  # loads the SMC kernels from Numba's cache
                 .obs("z", Normal(0.0, "s"), np.zeros(3)))
    exmc.sample_smc(throwaway, draws=100, chains=1, progressbar=False)
    rows = []
    for name in args.models.split(","):
        exact = exact_log_evidence(name)
        for seed in seeds:
            row = {"model": name, "seed": seed, "exact": exact,
                   "exmc": run_exmc(name, args.draws, args.chains, seed),
                   "pymc": run_pymc(name, args.draws, args.chains, seed)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    meta = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(), "cpus": os.cpu_count(), "draws": args.draws,
            "chains": args.chains, "load_average_start": load,
            "load_average_end": os.getloadavg()[0],
            "command": "python benchmarks/smc.py " + " ".join(
                f"--{k} {v}" for k, v in vars(args).items())}
    out = HERE / "results"
    (out / "smc.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# SMC: exmc.sample_smc and pm.sample_smc ({args.chains} chains x {args.draws} "
             f"particles, IMH, one process)", "", f"`{meta['command']}`, {meta['when']}, "
             f"{meta['machine']}, {meta['cpus']} CPUs, load average {load:.1f} at the start and "
             f"{meta['load_average_end']:.1f} at the end (a shared machine: times are rough)", "",
             "exmc's SE is the between-chain standard error of its 4 chains (3 degrees of "
             "freedom: a crude error bar, see docs/inference.md).", "",
             "| model | seed | exact log Z | exmc log Z (SE) | PyMC log Z | exmc s first / warm "
             "| PyMC s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        e, p = r["exmc"], r["pymc"]
        lines.append(f"| {r['model']} | {r['seed']} | {r['exact']:.3f} | {e['log_evidence']:.3f} "
                     f"({e['log_evidence_se']:.3f}) | {p['log_evidence']:.3f} | "
                     f"{e['seconds_first']:.2f} / {e['seconds_warm']:.2f} | {p['seconds']:.2f} |")
    (out / "smc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
