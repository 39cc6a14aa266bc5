"""Reference posteriors, from long nutpie runs of PyMC models, for the kinds of parameter
posteriordb has no reference draws for: a simplex, an LKJ Cholesky correlation, censored
likelihoods, and mixtures (a Dirichlet-weighted one and the generic ``Mixture`` wrapper).

posteriordb's 49 reference posteriors (commit 28f8d3d) have no LKJ correlation and no
censoring; their only simplexes are the 2-state transition rows of the HMMs
(``hmm_example``, checked in ``posteriordb_recursions.py``), and their only mixture is
``low_dim_gauss_mix`` (in ``posteriordb_reference.py``).  So each posterior here is a PyMC
model on a small simulated data set (a fixed seed; the data are stored with the
reference), sampled by nutpie for 4 chains of 25,000 draws after 2,000 tuning steps,
and the same model written in exmc is compared with it parameter by parameter in units
of both runs' MCSE, as in ``posteriordb_reference.py``.  ``VARIANTS`` are exmc models
written differently with the same posterior (LKJCorr's matrix for LKJCholeskyCov's
factor), compared with that posterior's reference.

    python benchmarks/nutpie_reference.py --reference [--only NAME ...]   # refresh the data file
    python benchmarks/nutpie_reference.py [--draws 1000 --warmup 1000 --chains 4 --seed 1]

Data file: ``benchmarks/data/nutpie_reference.json`` (per posterior: data, the nutpie
settings, and for every parameter its mean, sd, ESS of the mean and 5/50/95% quantiles
with their MCSE).  Results: ``benchmarks/results/nutpie_reference.{json,md}``.
tests/test_nutpie_reference.py samples the exmc models and makes the same comparison.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

import exmc
from exmc import (Beta, Builder, Censored, Custom, Dirichlet, DirichletMultinomial, Gamma, HalfNormal,
                  LKJCorr, LogNormal, Mixture, MvNormal, Normal, NormalMixture, Poisson, Weibull, ref)
from exmc import math as em

sys.path.insert(0, str(Path(__file__).parent))
from posteriordb_recursions import compare, compare_quantiles  # noqa: E402
import reference_report  # noqa: E402

ROOT = Path(__file__).parent.parent
DATA = ROOT / "benchmarks" / "data" / "nutpie_reference.json"
RESULTS = ROOT / "benchmarks" / "results"
QUANTILES = (0.05, 0.5, 0.95)
NUTPIE = dict(chains=4, draws=25_000, tune=2_000, cores=1)


# ---- the data: simulated once with a fixed seed, then kept in the data file ------------------
def data_dirichlet_multinomial():
    """Counts over 4 categories at 15 sites (50 each), overdispersed between sites."""
    rng = np.random.default_rng(161)
    p = rng.dirichlet(20.0 * np.array([0.4, 0.3, 0.2, 0.1]), size=15)
    return {"n": 50, "counts": np.array([rng.multinomial(50, q) for q in p]).tolist()}


def data_gauss_mix3():
    """150 draws of a three-component normal mixture (weights 0.5, 0.3, 0.2)."""
    rng = np.random.default_rng(162)
    k = rng.choice(3, size=150, p=[0.5, 0.3, 0.2])
    return {"y": rng.normal(np.array([-4.0, 0.0, 5.0])[k], np.array([1.0, 0.8, 1.5])[k]).tolist()}


def data_mvnormal_lkj():
    """60 draws of a 3-d normal with sds (1, 2, 0.5) and correlations 0.6, -0.3, 0.2."""
    rng = np.random.default_rng(163)
    corr = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])
    sd = np.array([1.0, 2.0, 0.5])
    return {"y": rng.multivariate_normal([1.0, -1.0, 0.5], corr * np.outer(sd, sd), 60).tolist()}


def data_tobit():
    """A regression measured between a detection limit 0 and a ceiling 5 (both censor)."""
    rng = np.random.default_rng(164)
    x = rng.normal(size=80)
    y = np.clip(1.0 + 2.0 * x + rng.normal(0.0, 1.5, size=80), 0.0, 5.0)
    return {"x": x.tolist(), "y": y.tolist(), "lower": 0.0, "upper": 5.0}


def data_weibull_survival():
    """Weibull survival times (shape 1.5, log scale 2 + 0.5 treated), right-censored at
    each subject's follow-up time, uniform on (2, 15)."""
    rng = np.random.default_rng(165)
    treated = (rng.random(100) < 0.5).astype(float)
    t = np.exp(2.0 + 0.5 * treated) * rng.weibull(1.5, size=100)
    follow_up = rng.uniform(2.0, 15.0, size=100)
    return {"treated": treated.tolist(), "time": np.minimum(t, follow_up).tolist(),
            "follow_up": follow_up.tolist()}


def data_poisson_mixture():
    """200 counts: 35% from Poisson(2), 65% from Poisson(9)."""
    rng = np.random.default_rng(166)
    low = rng.random(200) < 0.35
    return {"y": np.where(low, rng.poisson(2.0, 200), rng.poisson(9.0, 200)).astype(float).tolist()}


# ---- the PyMC models (the reference) ---------------------------------------------------------
def pymc_dirichlet_multinomial(d):
    import pymc as pm
    with pm.Model() as model:
        p = pm.Dirichlet("p", np.ones(4))
        conc = pm.LogNormal("conc", 3.0, 1.0)
        pm.DirichletMultinomial("counts", n=d["n"], a=conc * p, observed=np.array(d["counts"]))
    return model


def pymc_gauss_mix3(d):
    import pymc as pm
    from pymc.distributions.transforms import Ordered
    with pm.Model() as model:
        w = pm.Dirichlet("w", np.ones(3))
        mu = pm.Normal("mu", np.array([-5.0, 0.0, 5.0]), 2.0, transform=Ordered(),
                       initval=np.array([-5.0, 0.0, 5.0]))
        sigma = pm.HalfNormal("sigma", 2.0, shape=3)
        pm.NormalMixture("y", w=w, mu=mu, sigma=sigma, observed=np.array(d["y"]))
    return model


def pymc_mvnormal_lkj(d):
    import pymc as pm
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0, shape=3)
        chol, _, _ = pm.LKJCholeskyCov("chol", n=3, eta=2.0, sd_dist=pm.HalfNormal.dist(2.5),
                                       compute_corr=True)
        pm.MvNormal("y", mu=mu, chol=chol, observed=np.array(d["y"]))
    return model


def pymc_tobit(d):
    import pymc as pm
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 5.0)
        b = pm.Normal("b", 0.0, 5.0)
        sigma = pm.HalfNormal("sigma", 5.0)
        pm.Censored("y", pm.Normal.dist(a + b * np.array(d["x"]), sigma), lower=d["lower"],
                    upper=d["upper"], observed=np.array(d["y"]))
    return model


def pymc_weibull_survival(d):
    import pymc as pm
    with pm.Model() as model:
        alpha = pm.Gamma("alpha", 2.0, 1.0)
        b0 = pm.Normal("b0", 0.0, 5.0)
        b1 = pm.Normal("b1", 0.0, 2.0)
        scale = pm.math.exp(b0 + b1 * np.array(d["treated"]))
        pm.Censored("time", pm.Weibull.dist(alpha, scale), lower=None,
                    upper=np.array(d["follow_up"]), observed=np.array(d["time"]))
    return model


def pymc_poisson_mixture(d):
    import pymc as pm
    from pymc.distributions.transforms import Ordered
    with pm.Model() as model:
        w = pm.Beta("w", 2.0, 2.0)
        lam = pm.Gamma("lam", np.array([2.0, 10.0]), 1.0, transform=Ordered(positive=True),
                       initval=np.array([2.0, 10.0]))
        pm.Mixture("y", w=pm.math.stack([w, 1.0 - w]),
                   comp_dists=[pm.Poisson.dist(lam[0]), pm.Poisson.dist(lam[1])],
                   observed=np.array(d["y"]))
    return model


# ---- the same models in exmc (same variable names, so labels read both traces) ---------------
def exmc_dirichlet_multinomial(d):
    return (Builder().rv("p", Dirichlet(np.ones(4))).rv("conc", LogNormal(3.0, 1.0))
            .obs("counts", DirichletMultinomial(d["n"], ref("conc") * ref("p")),
                 np.array(d["counts"], float)))


def _ordered_after(previous, logp):
    """Stan's ordered vector, one element at a time: bounded below by the one before, with
    the element's own (unnormalised) density, as PyMC's ``Ordered`` transform gives."""
    return Custom(logp=logp, support=(ref(previous), None))


def _normal_kernel(mu, sigma):
    return -0.5 * ((exmc.value - mu) / sigma) ** 2


def exmc_gauss_mix3(d):
    mu = em.stack([ref("mu0"), ref("mu1"), ref("mu2")])
    return (Builder().rv("w", Dirichlet(np.ones(3)))
            .rv("mu0", Normal(-5.0, 2.0))
            .rv("mu1", _ordered_after("mu0", _normal_kernel(0.0, 2.0)))
            .rv("mu2", _ordered_after("mu1", _normal_kernel(5.0, 2.0)))
            .det("mu", mu)
            .rv("sigma", HalfNormal(2.0, shape=3))
            .obs("y", NormalMixture("w", mu, "sigma"), np.array(d["y"])))


def exmc_mvnormal_lkj(d):
    return (Builder().rv("mu", Normal(0.0, 5.0, shape=3))
            .lkj_cholesky_cov("chol", eta=2.0, n=3, sd_dist=HalfNormal(2.5))
            .obs("y", MvNormal("mu", chol="chol"), np.array(d["y"])))


def exmc_mvnormal_lkjcorr(d):
    # the same prior as LKJCholeskyCov's (sds ~ sd_dist, correlation ~ LKJ(eta)), written with
    # LKJCorr's correlation matrix and a covariance: checked against mvnormal_lkj's reference
    sds = ref("chol_stds")
    return (Builder().rv("mu", Normal(0.0, 5.0, shape=3))
            .rv("chol_stds", HalfNormal(2.5, shape=3)).rv("chol_corr", LKJCorr(3, 2.0))
            .obs("y", MvNormal("mu", cov=((ref("chol_corr") * sds).T * sds).T),  # diag(s) C diag(s)
                 np.array(d["y"])))


def exmc_tobit(d):
    return (Builder().rv("a", Normal(0.0, 5.0)).rv("b", Normal(0.0, 5.0))
            .rv("sigma", HalfNormal(5.0))
            .obs("y", Censored(Normal(ref("a") + ref("b") * np.array(d["x"]), "sigma"),
                               lower=d["lower"], upper=d["upper"]), np.array(d["y"])))


def exmc_weibull_survival(d):
    scale = em.exp(ref("b0") + ref("b1") * np.array(d["treated"]))
    return (Builder().rv("alpha", Gamma(2.0, 1.0)).rv("b0", Normal(0.0, 5.0))
            .rv("b1", Normal(0.0, 2.0))
            .obs("time", Censored(Weibull("alpha", scale), upper=np.array(d["follow_up"])),
                 np.array(d["time"])))


def exmc_poisson_mixture(d):
    # lam[1] > lam[0]: Gamma(10, 1)'s kernel above lam[0]
    return (Builder().rv("w", Beta(2.0, 2.0)).rv("lam0", Gamma(2.0, 1.0))
            .rv("lam1", _ordered_after("lam0", 9.0 * em.log(exmc.value) - exmc.value))
            .det("lam", em.stack([ref("lam0"), ref("lam1")]))
            .obs("y", Mixture(em.stack([ref("w"), 1.0 - ref("w")]),
                              [Poisson("lam0"), Poisson("lam1")]), np.array(d["y"])))


# name -> (kind of parameter it checks, data, PyMC model, exmc model, reference labels)
_CORR = ["chol_corr[0,1]", "chol_corr[0,2]", "chol_corr[1,2]"]
POSTERIORS = {
    "dirichlet_multinomial": ("simplex (Dirichlet, K = 4) with a DirichletMultinomial likelihood",
                              data_dirichlet_multinomial, pymc_dirichlet_multinomial,
                              exmc_dirichlet_multinomial,
                              [f"p[{i}]" for i in range(4)] + ["conc"]),
    "gauss_mix3": ("simplex weights of a three-component NormalMixture, ordered means", data_gauss_mix3,
                   pymc_gauss_mix3, exmc_gauss_mix3,
                   [f"{v}[{i}]" for v in ("w", "mu", "sigma") for i in range(3)]),
    "mvnormal_lkj": ("LKJ Cholesky correlation (LKJCholeskyCov, eta 2) of an MvNormal",
                     data_mvnormal_lkj, pymc_mvnormal_lkj, exmc_mvnormal_lkj,
                     [f"mu[{i}]" for i in range(3)] + [f"chol_stds[{i}]" for i in range(3)] + _CORR),
    "tobit": ("Censored Normal regression, censored below and above", data_tobit, pymc_tobit,
              exmc_tobit, ["a", "b", "sigma"]),
    "weibull_survival": ("Censored Weibull survival regression, right-censored per subject",
                         data_weibull_survival, pymc_weibull_survival, exmc_weibull_survival,
                         ["alpha", "b0", "b1"]),
    "poisson_mixture": ("two-component Mixture of Poissons (the generic Mixture wrapper), ordered rates",
                        data_poisson_mixture, pymc_poisson_mixture, exmc_poisson_mixture,
                        ["w", "lam[0]", "lam[1]"]),
}


# exmc models compared with another posterior's reference: name -> (reference, kind, exmc model)
VARIANTS = {
    "mvnormal_lkjcorr": ("mvnormal_lkj", "LKJCorr correlation matrix and sds (the same prior), "
                         "MvNormal with a covariance", exmc_mvnormal_lkjcorr),
}
COMPARISONS = {**{name: (name, p[0], p[3]) for name, p in POSTERIORS.items()}, **VARIANTS}


def locate(label):
    """(variable, 0-based index) of a label such as "chol_corr[0,1]" or "sigma"."""
    match = re.fullmatch(r"(\w+)(?:\[([\d,]+)\])?", label)
    return match.group(1), tuple(int(i) for i in match.group(2).split(",")) if match.group(2) else ()


def draws(posterior, label):
    """(chains, draws) of one labelled element from an InferenceData posterior (either library)."""
    var, index = locate(label)
    return np.asarray(posterior[var].values)[(..., *index)]


def load():
    """The data file: {"source", "settings", "posteriors": {name: {"kind", "data", "reference"}}}."""
    return json.loads(DATA.read_text())


def model(name, entry=None):
    """The exmc model of comparison ``name`` on its reference's stored data."""
    reference_name, _, make = COMPARISONS[name]
    return make((entry or load()["posteriors"][reference_name])["data"])


# ---- the reference runs ----------------------------------------------------------------------
def summarise(values):
    import arviz as az
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
            "ess": float(az.ess(values, method="mean")),
            "quantiles": {str(q): [float(np.quantile(values, q)),
                                   float(az.mcse(values, method="quantile", prob=q))]
                          for q in QUANTILES}}


def reference(name, seed):
    import nutpie
    kind, make_data, pymc_model, _, labels = POSTERIORS[name]
    data = make_data()
    start = time.process_time()
    idata = nutpie.sample(nutpie.compile_pymc_model(pymc_model(data)), seed=seed,
                          progress_bar=False, **NUTPIE)
    divergences = int(idata.sample_stats["diverging"].values.sum())
    return {"kind": kind, "data": data, "seed": seed, "divergences": divergences,
            "cpu_seconds": time.process_time() - start,
            "reference": {label: summarise(draws(idata.posterior, label)) for label in labels}}


def write_references(names, seed):
    import nutpie
    import pymc
    out = load() if DATA.exists() else {"posteriors": {}}
    out["source"] = (f"nutpie {nutpie.__version__} on PyMC {pymc.__version__}: the PyMC models "
                     "in benchmarks/nutpie_reference.py, each sampled with "
                     + ", ".join(f"{k}={v}" for k, v in NUTPIE.items())
                     + " and the seed recorded per posterior; command: python "
                       "benchmarks/nutpie_reference.py --reference; quantiles: "
                       "[value, ArviZ MCSE]; ess: ArviZ ESS of the mean")
    out["settings"] = NUTPIE
    for name in names:
        out["posteriors"][name] = entry = reference(name, seed)
        worst = min(r["ess"] for r in entry["reference"].values())
        print(f"{name}: min ESS {worst:.0f}, divergences {entry['divergences']}, "
              f"{entry['cpu_seconds']:.0f} s CPU", flush=True)
        out["posteriors"] = {n: out["posteriors"][n] for n in POSTERIORS if n in out["posteriors"]}
        DATA.write_text(json.dumps(out, indent=1) + "\n")  # after each: a long run keeps what it did


# ---- the comparison --------------------------------------------------------------------------
def run(name, num_draws, warmup, chains, seed):
    import arviz as az
    entry = load()["posteriors"][COMPARISONS[name][0]]
    start = time.perf_counter()
    idata = exmc.sample(model(name, entry), num_samples=num_draws, num_warmup=warmup,
                        chains=chains, seed=seed, progressbar=False)
    seconds = time.perf_counter() - start
    rows = {}
    for label, ref_summary in entry["reference"].items():
        v = draws(idata.posterior, label)
        z, ratio, mean, mcse = compare(v, ref_summary)
        rows[label] = {"z": z, "sd_ratio": ratio, "mean": mean, "mcse": mcse,
                       "quantile_z": compare_quantiles(v, ref_summary),
                       "reference_mean": ref_summary["mean"], "reference_sd": ref_summary["sd"]}
    return {"parameters": rows, "seconds": seconds,
            "divergences": int(idata.sample_stats["diverging"].values.sum()),
            "min_ess": float(min(az.ess(draws(idata.posterior, label))
                                 for label in entry["reference"]))}


def report(results, args):
    lines = ["# Reference posteriors from long nutpie runs, written in exmc", "",
             f"Command: `python benchmarks/nutpie_reference.py --draws {args.draws} "
             f"--warmup {args.warmup} --chains {args.chains} --seed {args.seed}` "
             "(shared 2-core machine; seconds include compiling).", "",
             reference_report.EXPLAIN, "",
             *reference_report.header(["posterior", "checks", *reference_report.SUMMARY])]
    for name, r in results.items():
        cells = [name, COMPARISONS[name][1], *reference_report.summary_cells(r)]
        lines.append(f"| {' | '.join(cells)} |")
    lines += ["", *reference_report.parameter_table(results), "", f"Reference: {load()['source']}."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None,
                        help="names (default: every comparison, or with --reference every "
                             "posterior)")
    parser.add_argument("--reference", action="store_true",
                        help="run nutpie and rewrite the data file (for --only's posteriors)")
    args = parser.parse_args()
    if args.reference:
        return write_references(args.only or list(POSTERIORS), seed=16)
    settings = {k: getattr(args, k) for k in ("draws", "warmup", "chains", "seed")}
    path = RESULTS / "nutpie_reference.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    results = previous["posteriors"] if previous.get("settings") == settings else {}
    for name in args.only or list(COMPARISONS):
        results[name] = r = run(name, args.draws, args.warmup, args.chains, args.seed)
        print(f"{name}: worst |z| {max(abs(p['z']) for p in r['parameters'].values()):.2f}, "
              f"divergences {r['divergences']}, {r['seconds']:.0f} s", flush=True)
        RESULTS.mkdir(exist_ok=True)
        ordered = {n: results[n] for n in COMPARISONS if n in results}
        path.write_text(json.dumps({"settings": settings, "posteriors": ordered}, indent=1) + "\n")
        (RESULTS / "nutpie_reference.md").write_text(report(ordered, args))


if __name__ == "__main__":
    main()
