"""Regression, hierarchical, mixture and GP posteriors of posteriordb, written in exmc, against
posteriordb's reference posteriors in units of Monte Carlo standard error.

The companion of ``posteriordb_recursions.py`` (recursion and ODE models, kept in examples/):
the same comparison (``compare``, ``compare_quantiles``) for models written here, one
function per posterior translating posteriordb's Stan program.  For every reference
parameter z = (exmc mean - reference mean) / sqrt(MCSE_exmc^2 + MCSE_ref^2) and the
ratio of posterior standard deviations.  Reference draws: posteriordb's Stan draws (10
chains of 1,000), summarised with the data in ``benchmarks/data/posteriordb_reference.json.gz``,
made from a posteriordb git checkout by ``--extract``.

    python benchmarks/posteriordb_reference.py [--draws 1000 --warmup 1000 --chains 4 --seed 1]
    python benchmarks/posteriordb_reference.py --extract /path/to/posteriordb   # refresh the data file

Results: ``benchmarks/results/posteriordb_reference.{json,md}``; a run with ``--only`` replaces
those posteriors' rows of an earlier run with the same settings and keeps the others.

posteriordb (commit 28f8d3d) has reference draws for 49 posteriors; none uses an LKJ
correlation or censoring, and its only simplexes are HMM transition rows
(``benchmarks/posteriordb_simplex.py``; long nutpie runs stand in for the rest:
``benchmarks/nutpie_reference.py``); the ones here cover a non-centred hierarchy, an ordered two-component
mixture, an autoregression, Gaussian GLMs from Gelman and Hill, a latent GP with a
Cholesky factor inside the model, a GP's marginal MvNormal and brms's 26-parameter diamonds.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np

import exmc
from exmc import (Beta, Builder, Custom, Flat, Gamma, HalfCauchy, HalfFlat, HalfNormal,
                  HalfStudentT, MvNormal, Normal, NormalMixture, Poisson, StudentT, ref)
from exmc import math as em

sys.path.insert(0, str(Path(__file__).parent))
from posteriordb_recursions import _git_json, compare, compare_quantiles, gradient_microseconds  # noqa: E402
import reference_report  # noqa: E402

ROOT = Path(__file__).parent.parent
DATA = ROOT / "benchmarks" / "data" / "posteriordb_reference.json.gz"  # diamonds' data: 2.4 MB as text
RESULTS = ROOT / "benchmarks" / "results"
QUANTILES = (0.05, 0.5, 0.95)
LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# ---- the models: one per posterior, named as in posteriordb's Stan programs ------------------
def eight_schools_noncentered(d):
    theta = ref("mu") + ref("theta_trans") * ref("tau")
    return (Builder()
            .rv("theta_trans", Normal(0.0, 1.0, shape=d["J"]))
            .rv("mu", Normal(0.0, 5.0)).rv("tau", HalfCauchy(5.0))
            .det("theta", theta)
            .obs("y", Normal(theta, np.asarray(d["sigma"], float)), np.asarray(d["y"], float)))


def low_dim_gauss_mix(d):
    # Stan's ordered[2] mu ~ normal(0, 2): mu2 bounded below by mu1, both with the Normal density
    normal2 = -0.5 * (exmc.value / 2.0) ** 2 - np.log(2.0) - LOG_SQRT_2PI
    mu = em.stack([ref("mu1"), ref("mu2")])
    theta = ref("theta")
    return (Builder()
            .rv("mu1", Normal(0.0, 2.0))
            .rv("mu2", Custom(logp=normal2, support=(ref("mu1"), None)))
            .rv("sigma", HalfNormal(2.0, shape=2)).rv("theta", Beta(5.0, 5.0))
            .obs("y", NormalMixture(em.stack([theta, 1.0 - theta]), mu, ref("sigma")),
                 np.asarray(d["y"], float)))


def arK(d):
    y, K = np.asarray(d["y"], float), d["K"]
    lags = np.column_stack([y[K - k - 1:len(y) - k - 1] for k in range(K)])  # lags[t, k] = y[t - k - 1]
    return (Builder()
            .rv("alpha", Normal(0.0, 10.0)).rv("beta", Normal(0.0, 10.0, shape=K))
            .rv("sigma", HalfCauchy(2.5))
            .obs("y", Normal(ref("alpha") + em.dot(lags, ref("beta")), ref("sigma")), y[K:]))


def _linear(y, X, sigma_prior):
    """y ~ Normal(X beta, sigma) with flat beta (Stan's default) and the given sigma prior."""
    X = np.column_stack([np.ones(len(y))] + [np.asarray(c, float) for c in X])
    return (Builder()
            .rv("beta", Flat(shape=X.shape[1])).rv("sigma", sigma_prior)
            .obs("y", Normal(em.dot(X, ref("beta")), ref("sigma")), np.asarray(y, float)))


def kidscore_interaction(d):
    hs, iq = np.asarray(d["mom_hs"], float), np.asarray(d["mom_iq"], float)
    return _linear(d["kid_score"], [hs, iq, hs * iq], HalfCauchy(2.5))


def kidscore_momhsiq(d):
    return _linear(d["kid_score"], [d["mom_hs"], d["mom_iq"]], HalfCauchy(2.5))


def logearn_interaction_z(d):
    height, male = np.asarray(d["height"], float), np.asarray(d["male"], float)
    z = (height - height.mean()) / height.std(ddof=1)
    return _linear(np.log(d["earn"]), [z, male, z * male], HalfFlat())


def logearn_height(d):
    return _linear(np.log(d["earn"]), [d["height"]], HalfFlat())


def logmesquite_logvash(d):
    d1, d2, ch = (np.asarray(d[k], float) for k in ("diam1", "diam2", "canopy_height"))
    return _linear(np.log(d["weight"]), [np.log(d1 * d2 * ch), np.log(d1 * d2), np.log(d1 / d2),
                                         np.log(d["total_height"]), d["group"]], HalfFlat())


def nes(d):
    age = np.asarray(d["age_discrete"])
    return _linear(d["partyid7"], [d["real_ideo"], d["race_adj"], age == 2, age == 3, age == 4,
                                   d["educ1"], d["gender"], d["income"]], HalfFlat())


def blr(d):
    X = np.asarray(d["X"], float)
    return (Builder()
            .rv("beta", Normal(0.0, 10.0, shape=d["D"])).rv("sigma", HalfNormal(10.0))
            .obs("y", Normal(em.dot(X, ref("beta")), ref("sigma")), np.asarray(d["y"], float)))


def kilpisjarvi(d):
    return (Builder()
            .rv("alpha", Normal(d["pmualpha"], d["psalpha"]))
            .rv("beta", Normal(d["pmubeta"], d["psbeta"])).rv("sigma", HalfFlat())
            .obs("y", Normal(ref("alpha") + ref("beta") * np.asarray(d["x"], float), ref("sigma")),
                 np.asarray(d["y"], float)))


def gp_pois_regr(d):
    x = np.asarray(d["x"], float)
    n = len(x)
    squared = (x[:, None] - x[None, :]) ** 2
    cov = ref("alpha") ** 2 * em.exp(-0.5 * squared / ref("rho") ** 2) + 1e-10 * np.eye(n)
    f = em.dot(em.cholesky(cov), ref("f_tilde"))
    return (Builder()
            .rv("rho", Gamma(25.0, 4.0)).rv("alpha", HalfNormal(2.0))
            .rv("f_tilde", Normal(0.0, 1.0, shape=n))
            .det("f", f)
            .obs("k", Poisson(em.exp(f)), np.asarray(d["k"], float)))


def gp_regr(d):
    x, y = np.asarray(d["x"], float), np.asarray(d["y"], float)
    squared = (x[:, None] - x[None, :]) ** 2
    # as in the Stan program, sigma itself (not sigma^2) is added to the diagonal
    cov = (ref("alpha") ** 2 * em.exp(-0.5 * squared / ref("rho") ** 2)
           + ref("sigma") * np.eye(len(x)))
    return (Builder()
            .rv("rho", Gamma(25.0, 4.0)).rv("alpha", HalfNormal(2.0)).rv("sigma", HalfNormal(1.0))
            .obs("y", MvNormal(np.zeros(len(x)), cov=cov), y))


def kidscore_interaction_z(d):
    hs, iq = np.asarray(d["mom_hs"], float), np.asarray(d["mom_iq"], float)
    z_hs = (hs - hs.mean()) / (2 * hs.std(ddof=1))
    z_iq = (iq - iq.mean()) / (2 * iq.std(ddof=1))
    return _linear(d["kid_score"], [z_hs, z_iq, z_hs * z_iq], HalfFlat())


def kidscore_mom_work(d):
    work = np.asarray(d["mom_work"])
    return _linear(d["kid_score"], [work == 2, work == 3, work == 4], HalfFlat())


def logmesquite(d):
    return _linear(np.log(d["weight"]), [np.log(d[k]) for k in ("diam1", "diam2", "canopy_height",
                                                               "total_height", "density")]
                   + [d["group"]], HalfFlat())


def logearn_logheight_male(d):
    return _linear(np.log(d["earn"]), [np.log(d["height"]), d["male"]], HalfFlat())


def diamonds(d):
    # brms's program: centred design without the intercept column, Student-t priors
    X = np.asarray(d["X"], float)[:, 1:]
    means = X.mean(axis=0)
    return (Builder()
            .rv("b", Normal(0.0, 1.0, shape=X.shape[1]))
            .rv("Intercept", StudentT(3.0, 8.0, 10.0)).rv("sigma", HalfStudentT(3.0, 10.0))
            .det("b_Intercept", ref("Intercept") - em.dot(means, ref("b")))
            .obs("Y", Normal(ref("Intercept") + em.dot(X - means, ref("b")), ref("sigma")),
                 np.asarray(d["Y"], float)))


# posterior name -> (model function, posteriordb data set)
POSTERIORS = {
    "eight_schools-eight_schools_noncentered": (eight_schools_noncentered, "eight_schools"),
    "low_dim_gauss_mix-low_dim_gauss_mix": (low_dim_gauss_mix, "low_dim_gauss_mix"),
    "arK-arK": (arK, "arK"),
    "kidiq-kidscore_interaction": (kidscore_interaction, "kidiq"),
    "kidiq-kidscore_momhsiq": (kidscore_momhsiq, "kidiq"),
    "earnings-logearn_interaction_z": (logearn_interaction_z, "earnings"),
    "earnings-logearn_height": (logearn_height, "earnings"),
    "mesquite-logmesquite_logvash": (logmesquite_logvash, "mesquite"),
    "nes1972-nes": (nes, "nes1972"),
    "sblrc-blr": (blr, "sblrc"),
    "kilpisjarvi_mod-kilpisjarvi": (kilpisjarvi, "kilpisjarvi_mod"),
    "gp_pois_regr-gp_pois_regr": (gp_pois_regr, "gp_pois_regr"),
    "gp_pois_regr-gp_regr": (gp_regr, "gp_pois_regr"),
    "kidiq_with_mom_work-kidscore_interaction_z": (kidscore_interaction_z, "kidiq_with_mom_work"),
    "kidiq_with_mom_work-kidscore_mom_work": (kidscore_mom_work, "kidiq_with_mom_work"),
    "mesquite-logmesquite": (logmesquite, "mesquite"),
    "earnings-logearn_logheight_male": (logearn_logheight_male, "earnings"),
    "diamonds-diamonds": (diamonds, "diamonds"),
}
# sampler options beyond the defaults: diamonds' trajectories (up to 1023 gradients of a
# 5000 x 24 design) outlast the default 10 s heartbeat on a loaded 2-core machine
SAMPLER = {"diamonds-diamonds": {"heartbeat_timeout": 300.0}}
# exmc names of Stan parameters written differently here (ordered[2] mu as mu1 < mu2)
RENAMED = {"low_dim_gauss_mix-low_dim_gauss_mix": {"mu[1]": ("mu1", ()), "mu[2]": ("mu2", ())}}


def load():
    """The data file: {"source": ..., "posteriors": {name: {"data", "reference", "stan_model"}}}."""
    with gzip.open(DATA, "rt") as f:
        return json.load(f)


def locate(name, label):
    """(exmc variable, 0-based index) of posteriordb's parameter ``label`` ("beta[2]") of ``name``."""
    if label in RENAMED.get(name, {}):
        return RENAMED[name][label]
    match = re.fullmatch(r"(\w+)(?:\[([\d,]+)\])?", label)
    index = tuple(int(i) - 1 for i in match.group(2).split(",")) if match.group(2) else ()
    return match.group(1), index


def parameters(name, idata):
    """{reference label: exmc draws (chains, draws)} for every reference parameter."""
    reference = load()["posteriors"][name]["reference"]
    return {label: idata.posterior[var].values[(..., *index)]
            for label, (var, index) in ((label, locate(name, label)) for label in reference)}


# ---- the data file ---------------------------------------------------------------------------
def extract(repo):
    """Write the data file from a posteriordb git checkout (or bare mirror) at ``repo``."""
    import subprocess
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    base = "posterior_database"
    out = {"source": f"posteriordb (github.com/stan-dev/posteriordb) commit {commit}: "
                     f"{base}/data/data/<data>.json.zip and "
                     f"{base}/reference_posteriors/draws/draws/<posterior>.json.zip; "
                     "reference summaries computed here from all reference draws "
                     "(ess: ArviZ ESS of the mean over the 10 chains; quantiles: [value, ArviZ MCSE])",
           "posteriors": {}}
    for name, (_, data_name) in POSTERIORS.items():
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
    with gzip.open(DATA, "wt") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {DATA}")


# ---- the comparison --------------------------------------------------------------------------
def run(name, draws, warmup, chains, seed):
    entry = load()["posteriors"][name]
    model = POSTERIORS[name][0](entry["data"])
    start = time.perf_counter()
    idata = exmc.sample(model, num_samples=draws, num_warmup=warmup, chains=chains, seed=seed,
                        progressbar=False, **SAMPLER.get(name, {}))
    seconds = time.perf_counter() - start
    rows, values = {}, parameters(name, idata)
    for label, v in values.items():
        z, ratio, mean, mcse = compare(np.asarray(v), entry["reference"][label])
        rows[label] = {"z": z, "sd_ratio": ratio, "mean": mean, "mcse": mcse,
                       "quantile_z": compare_quantiles(np.asarray(v), entry["reference"][label]),
                       "reference_mean": entry["reference"][label]["mean"],
                       "reference_sd": entry["reference"][label]["sd"]}
    return {"parameters": rows, "seconds": seconds, "gradient_us": gradient_microseconds(model),
            "divergences": int(idata.sample_stats["diverging"].values.sum()),
            "min_ess": float(min(az.ess(np.asarray(v)) for v in values.values()))}


def report(results, args):
    lines = ["# posteriordb reference posteriors written in exmc", "",
             f"Command: `python benchmarks/posteriordb_reference.py --draws {args.draws} "
             f"--warmup {args.warmup} --chains {args.chains} --seed {args.seed}` "
             "(shared 2-core machine; seconds include compiling).", "",
             reference_report.EXPLAIN + " Gradient: median microseconds of one log density "
             "and gradient (a ctypes call).", "",
             *reference_report.header(["posterior", *reference_report.SUMMARY, "gradient (us)"])]
    for name, r in results.items():
        cells = [name, *reference_report.summary_cells(r), f"{r['gradient_us']:.1f}"]
        lines.append(f"| {' | '.join(cells)} |")
    lines += ["", *reference_report.parameter_table(results), "", f"Reference: {load()['source']}."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(POSTERIORS), help="posterior names")
    parser.add_argument("--extract", metavar="POSTERIORDB", help="refresh the data file and stop")
    args = parser.parse_args()
    if args.extract:
        return extract(Path(args.extract))
    settings = {k: getattr(args, k) for k in ("draws", "warmup", "chains", "seed")}
    path = RESULTS / "posteriordb_reference.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    # a run of some posterior(s) replaces their rows in an earlier run with the same settings
    results = previous["posteriors"] if previous.get("settings") == settings else {}
    for name in args.only:
        results[name] = r = run(name, args.draws, args.warmup, args.chains, args.seed)
        print(f"{name}: worst |z| {max(abs(p['z']) for p in r['parameters'].values()):.2f}, "
              f"divergences {r['divergences']}, {r['seconds']:.0f} s", flush=True)
        RESULTS.mkdir(exist_ok=True)  # written after each posterior: a long run keeps what it did
        path.write_text(json.dumps({"settings": settings, "posteriors": results}, indent=1) + "\n")
        ordered = {n: results[n] for n in POSTERIORS if n in results}
        (RESULTS / "posteriordb_reference.md").write_text(report(ordered, args))


if __name__ == "__main__":
    main()
