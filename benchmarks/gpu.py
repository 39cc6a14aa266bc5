"""The GPU race: exmc's device sampler against NumPyro's vectorised NUTS on one GPU, and exmc's CPU.

    python benchmarks/gpu.py --out DIR         # on a GPU machine: the whole race, ~8 minutes
    python benchmarks/gpu.py --chains 64,1024 --models eight_schools_nc --out DIR
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu.py --smoke --out /tmp/g   # no GPU: the script's check
    python benchmarks/gpu.py --ptx             # no GPU: the kernels compile for sm_90 (numba-cuda + NVVM)

Models: the logistic race model (benchmarks.models.logistic, d = 21, X 500 x 20) and
eight schools non-centred (d = 10).  Chains 4096, 1024, 64 and 1, each 1000 warmup +
1000 draws, target acceptance 0.8, maximum tree depth 10, float64 everywhere (JAX's x64
on).  For each (model, chains):

- exmc GPU: ``exmc.runtime.gpu.run_on_device`` (what ``exmc.sample(device="cuda")``
  runs), the kernel compiled beforehand (compile time reported apart);
- exmc GPU ChEES: the same with ``sampler="chees"`` (ChEES-HMC, every lane the same
  leapfrog count; ``--no-chees`` leaves it out);
- NumPyro: ``MCMC(NUTS(...), chain_method="vectorized")`` on the same GPU; the time of
  one ``run`` includes JAX's compilation (no exclusion is reliable), so at the largest
  chain count the same ``MCMC`` object runs a second time and that time is reported too;
- exmc CPU: chains in a fork pool of one process per core (``run_chain``, compiled in the
  parent).  CPU throughput stops growing once every core has a chain, so at most
  ``--cpu-chains`` (128) chains are run and larger counts are given that run's ESS/s
  (the "CPU chains run" column says so).

ESS: the minimum over scalar parameters of bulk ESS (rank-normalised split R-hat's ESS,
Vehtari et al. 2021; ``bulk_ess`` here, checked against ArviZ by ``--smoke``) of the
post-warmup draws of all chains; ESS/s = ESS / sampling wall seconds.  The device
columns: kernel time share (kernel seconds / exmc GPU sampling seconds), the idle-lane
share (lockstep cost of NUTS's branching: 1 - leapfrog steps made / (32 x each warp's
most steps), per launch; also per draw, an upper bound: lanes meeting at every draw,
for warmup and sampling apart, as ``benchmarks/gpu_divergence.py`` computes it from CPU
runs) and leapfrog steps per chain per launch.

Each phase has a time budget (``--budget`` seconds in all); a run that would start after
its phase's budget is recorded as skipped.  Writes DIR/gpu.json and DIR/gpu.md (copy them
to benchmarks/results/).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # numba's CUDA context shares the GPU
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import models  # noqa: E402

EIGHT_SCHOOLS = models.load("eight_schools")
CHAINS = (4096, 1024, 64, 1)
MODEL_NAMES = ("logistic", "eight_schools_nc")


# ---- models -------------------------------------------------------------------------------

def exmc_model(name):
    import exmc
    from exmc import Builder, HalfNormal, Normal
    if name == "logistic":
        return models.logistic()
    d = EIGHT_SCHOOLS
    return (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
            .rv("z", Normal(0.0, 1.0, shape=8))
            .det("theta", exmc.ref("mu") + exmc.ref("tau") * exmc.ref("z"))
            .obs("y", Normal("theta", d["sigma"]), d["y"]))


def numpyro_model(name):
    """(model function, its arguments) for NumPyro: the same densities."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    if name == "logistic":
        d = models.load("logistic")
        X, y = jnp.asarray(d["X"]), jnp.asarray(d["y"])

        def logistic(X, y):
            alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
            beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]))
            numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)
        return logistic, (X, y)
    sigma, y = jnp.asarray(EIGHT_SCHOOLS["sigma"]), jnp.asarray(EIGHT_SCHOOLS["y"])

    def eight_schools_nc(sigma, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfNormal(5.0))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([8]))
        numpyro.sample("y", dist.Normal(mu + tau * z, sigma), obs=y)
    return eight_schools_nc, (sigma, y)


# ---- effective sample size (no ArviZ on the GPU machine) ----------------------------------

def _ess(x):
    """ESS of (chains, draws) by Geyer's initial monotone sequence over the chains' autocovariance."""
    m, n = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, :n] / n
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + (x.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    if not var_plus > 0:
        return float("nan")
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Initial positive sequence: sums of adjacent pairs, while positive.
    kept = np.zeros(n)
    kept[:2] = rho[:2]
    t = 1
    even, odd = rho[0], rho[1]
    while t < n - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0.0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0.0:
        kept[last + 1] = even
    # Initial monotone sequence: pair sums may not grow.
    t = 1
    while t <= last - 2:
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
        t += 2
    total = m * n
    tau = -1.0 + 2.0 * kept[:last + 1].sum() + kept[last + 1:last + 2].sum()
    return total / max(tau, 1.0 / np.log10(total))


def bulk_ess(x):
    """Bulk ESS of draws (chains, draws): split chains, rank-normalise, then ``_ess``."""
    x = np.asarray(x, dtype=float)
    half = x.shape[1] // 2
    x = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])
    ranks = stats.rankdata(x, axis=None).reshape(x.shape)
    return _ess(stats.norm.ppf((ranks - 0.375) / (x.size + 0.25)))


def min_ess(columns):
    """Minimum bulk ESS over ``columns``, each (chains, draws)."""
    return float(min(bulk_ess(c) for c in columns))


def exmc_columns(compiled, draws):
    """Constrained scalar columns (chains, draws) of the sampled variables from unconstrained draws."""
    chains, n, dim = draws.shape
    values = compiled.constrain(draws.reshape(-1, dim))
    out = []
    for name in compiled.pointmap.names:
        v = values[name].reshape(chains, n, -1)
        out += [v[..., k] for k in range(v.shape[-1])]
    return out


# ---- the three samplers -------------------------------------------------------------------

def run_exmc_gpu(name, chains, warmup, draws, seed, sampler_name="nuts"):
    from benchmarks.gpu_divergence import idle_share
    from exmc.compiler import compile_model
    from exmc.runtime.chain import make_settings
    from exmc.runtime.gpu import device_sampler, run_on_device
    from exmc.samplers.nuts import STAT_NAMES

    model = exmc_model(name)
    compiled = compile_model(model)
    settings = make_settings(warmup)
    start = time.perf_counter()
    sampler = device_sampler(model, compiled, settings, sampler_name)  # compiles the kernels
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    results, device = run_on_device(sampler, np.random.SeedSequence(seed).spawn(chains), None,
                                    warmup + draws, _ignore, None)
    wall = time.perf_counter() - start
    kept = np.stack([r.draws[warmup:] for r in results])
    stats_ = np.stack([r.stats[warmup:] for r in results])
    steps = np.stack([r.stats[:, STAT_NAMES.index("n_steps")] for r in results])
    ess = min_ess(exmc_columns(compiled, kept))
    return {"ess": ess, "seconds": wall, "ess_per_s": ess / wall, "compile_s": compile_s,
            "kernel_share": device.kernel_time / wall,
            "idle_lane_share": device.idle_lane_share,
            "steps_per_chain_per_launch": device.steps_per_chain_per_launch,
            "launches": device.launches,
            # The lockstep cost by phase, and if lanes met at every draw (an upper bound).
            "idle_lane_share_per_draw": idle_share(steps, 1)[0],
            "idle_lane_share_warmup_per_draw": idle_share(steps[:, :warmup], 1)[0]
            if warmup else None,
            "idle_lane_share_sampling_per_draw": idle_share(steps[:, warmup:], 1)[0],
            "divergences": int(stats_[..., STAT_NAMES.index("diverging")].sum()),
            "gradients_per_draw": float(stats_[..., STAT_NAMES.index("n_steps")].mean())}


def _ignore(*args):
    pass


_CPU = {}  # set in the parent before forking: compiled model, settings, seeds


def _cpu_chain(chain):
    from exmc.runtime.chain import run_chain, start_state
    compiled, settings, seeds, total, warmup = (_CPU[k] for k in (
        "compiled", "settings", "seeds", "total", "warmup"))
    rng = np.random.Generator(np.random.PCG64(seeds[chain]))
    state = start_state(compiled, None, rng, False)
    result = run_chain(compiled, settings, state, rng, total)
    return result.draws[warmup:], result.stats[warmup:]


def run_exmc_cpu(name, chains, warmup, draws, seed, workers, deadline):
    from exmc.compiler import compile_model
    from exmc.runtime.chain import load_kernels, make_settings

    model = exmc_model(name)
    start = time.perf_counter()
    compiled = compile_model(model)
    settings = make_settings(warmup)
    load_kernels(compiled, settings, False)
    compile_s = time.perf_counter() - start
    _CPU.update(compiled=compiled, settings=settings, total=warmup + draws, warmup=warmup,
                seeds=np.random.SeedSequence(seed).spawn(chains))
    start = time.perf_counter()
    pool = multiprocessing.get_context("fork").Pool(min(workers, chains))
    try:
        pending = pool.map_async(_cpu_chain, range(chains))
        out = pending.get(timeout=max(1.0, deadline - time.perf_counter()))
    except multiprocessing.TimeoutError:
        return {"skipped": "ran past its phase's time budget"}
    finally:
        pool.terminate()
    wall = time.perf_counter() - start
    kept = np.stack([d for d, _ in out])
    stats_ = np.stack([s for _, s in out])
    ess = min_ess(exmc_columns(compiled, kept))
    return {"ess": ess, "seconds": wall, "ess_per_s": ess / wall, "compile_s": compile_s,
            "chains_run": chains, "divergences": int(stats_[..., 1].sum()),
            "gradients_per_draw": float(stats_[..., 4].mean())}


def run_numpyro(name, chains, warmup, draws, seed, again, deadline):
    import jax
    from numpyro.infer import MCMC, NUTS

    model, args = numpyro_model(name)
    FIELDS = ("diverging", "num_steps")  # noqa: N806
    mcmc = MCMC(NUTS(model, target_accept_prob=0.8, max_tree_depth=10), num_warmup=warmup,
                num_samples=draws, num_chains=chains, chain_method="vectorized",
                progress_bar=False)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=FIELDS)
    jax.block_until_ready(mcmc.get_samples())
    wall = time.perf_counter() - start
    row = {"seconds_with_compile": wall}
    if again and time.perf_counter() + 1.2 * wall < deadline:
        # The same object again: JAX's compiled functions are reused where they can be.
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed + 1), *args, extra_fields=FIELDS)
        jax.block_until_ready(mcmc.get_samples())
        row["seconds_second_run"] = time.perf_counter() - start
    samples = mcmc.get_samples(group_by_chain=True)
    columns = []
    for value in samples.values():
        v = np.asarray(value).reshape(chains, draws, -1)
        columns += [v[..., k] for k in range(v.shape[-1])]
    extra = mcmc.get_extra_fields(group_by_chain=True)
    seconds = row.get("seconds_second_run", wall)
    ess = min_ess(columns)
    row.update(ess=ess, seconds=seconds, ess_per_s=ess / seconds,
               divergences=int(np.asarray(extra["diverging"]).sum()),
               gradients_per_draw=float(np.asarray(extra["num_steps"]).mean()))
    return row


# ---- the race -----------------------------------------------------------------------------

def smoke(out):
    """Without a GPU (simulator): tiny runs of the exmc paths, and bulk_ess against ArviZ."""
    import arviz as az
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(4, 300)), axis=1) * 0.1 + rng.normal(size=(4, 300))
    ours, theirs = bulk_ess(x), float(az.ess(x, method="bulk"))
    assert abs(ours - theirs) < 1e-6 * theirs, (ours, theirs)
    rows = []
    for name in MODEL_NAMES:
        rows.append({"model": name, "chains": 4, "sampler": "exmc GPU",
                     **run_exmc_gpu(name, 4, 20, 20, 1)})
        rows.append({"model": name, "chains": 4, "sampler": "exmc GPU ChEES",
                     **run_exmc_gpu(name, 4, 20, 20, 1, "chees")})
        rows.append({"model": name, "chains": 4, "sampler": "exmc CPU",
                     **run_exmc_cpu(name, 4, 20, 20, 1, 2, time.perf_counter() + 300)})
    write(out, rows, {"smoke": True, "bulk_ess_vs_arviz": [ours, theirs]})


def ptx(names, cc=(9, 0)):
    """Compile each model's kernel to PTX for compute capability ``cc`` without a GPU.

    Needs numba-cuda with NVVM (``pip install "numba-cuda[cu12]"``, best in its own
    virtual environment): a check that the device code types and compiles for a real GPU
    before device time is spent.  Prints each kernel's thread-local memory per chain.
    """
    import re

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, types

    from exmc.compiler import _code_version, _load
    from exmc.compiler.lower import lower_model
    from exmc.ir.serialize import structure_hash
    from exmc.samplers.gpu import chees, nuts

    class Target:  # device functions compile for "the current device"; there is none
        compute_capability = cc
    dispatcher.get_current_device = Target
    f1, f2, f3 = types.float64[::1], types.float64[:, ::1], types.float64[:, :, ::1]
    signature = (f2, f2, f2, f2, f2, f2, types.uint64[:, ::1], types.int8[::1], types.int8[::1],
                 f1, f1, types.int64, f3, f3)
    i64, i8 = types.int64, types.int8[::1]
    u2 = types.uint64[:, ::1]
    chees_signatures = {  # ChEESSampler's launches
        "transition": (f2, f2, f1, u2, f1, f1, f1, f1, i64, i64, i64, f3, f3, f2, f2, f2, f2),
        "adapt": (f1, f1, f1, f1, f1, f2, f2, f2, f2, f2, f2, i64, i8, i8)}
    for name in names:
        model = exmc_model(name)
        model.validate()
        program = lower_model(model)
        digest = structure_hash(model)
        module = _load(f"exmc_model_{_code_version()}_{digest[:24]}_cuda", program, digest, "cuda")
        kernel = nuts.make_kernel(module.logp_grad, module.DIM, module.LOCAL_SCRATCH, 10)
        kernels = [("NUTS", kernel, signature)]
        transition, adapt = chees.make_kernels(module.logp_grad, module.DIM,
                                               module.LOCAL_SCRATCH)
        kernels += [("ChEES transition", transition, chees_signatures["transition"]),
                    ("ChEES adapt", adapt, chees_signatures["adapt"])]
        for label, kernel, types_ in kernels:
            start = time.perf_counter()
            code, _ = cuda.compile_ptx(kernel.py_func, types_, cc=cc)
            local = re.search(r"__local_depot0\[(\d+)\]", code)
            print(f"{name}, {label}: PTX for sm_{cc[0]}{cc[1]} in "
                  f"{time.perf_counter() - start:.1f} s, "
                  f"{int(local.group(1)) if local else 0} bytes of thread-local memory per thread")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--chains", default=",".join(map(str, CHAINS)))
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu-chains", type=int, default=128)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all phases")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-chees", dest="chees", action="store_false",
                        help="leave out sampler='chees' (ChEES-HMC) on the GPU")
    parser.add_argument("--ptx", action="store_true", help="compile the kernels to PTX, no GPU")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        return smoke(out)
    if args.ptx:
        return ptx(args.models.split(","))
    chain_counts = sorted({int(c) for c in args.chains.split(",")}, reverse=True)
    names = args.models.split(",")
    workers = os.cpu_count() or 1
    began = time.perf_counter()
    rows = []

    def record(sampler, name, chains, phase_end, run):
        row = {"model": name, "chains": chains, "sampler": sampler}
        if time.perf_counter() > phase_end:
            row["skipped"] = "its phase's time budget was spent"
        else:
            try:
                row.update(run())
            except Exception as err:  # a failed peer or run is a result too
                row["error"] = f"{type(err).__name__}: {err}"[:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(out, rows, meta)

    meta = {"warmup": args.warmup, "draws": args.draws, "seed": args.seed, "cpu_workers": workers,
            "python": platform.python_version()}
    # CPU first: forking after CUDA or JAX has started is unsafe.
    phase_end = began + 0.3 * args.budget
    cpu = {}
    for name in names:
        for chains in sorted({min(c, args.cpu_chains) for c in chain_counts}, reverse=True):
            record("exmc CPU", name, chains, phase_end, lambda: run_exmc_cpu(
                name, chains, args.warmup, args.draws, args.seed, workers, phase_end))
            cpu[name, chains] = rows[-1]
    for row in rows:  # CPU throughput is flat beyond the core count: larger counts reuse it
        row["chains_run"] = row["chains"]
    for name in names:
        for chains in chain_counts:
            if chains > args.cpu_chains:
                rows.append({**cpu[name, args.cpu_chains], "chains": chains,
                             "chains_run": args.cpu_chains})
    from numba import cuda
    gpu_name = getattr(cuda.get_current_device(), "name", "Numba's CUDA simulator")
    meta["gpu"] = gpu_name.decode() if isinstance(gpu_name, bytes) else str(gpu_name)
    phase_end = time.perf_counter() + 0.3 * args.budget
    for chains in chain_counts:
        for name in names:
            record("exmc GPU", name, chains, phase_end, lambda: run_exmc_gpu(
                name, chains, args.warmup, args.draws, args.seed))
            if args.chees:
                record("exmc GPU ChEES", name, chains, phase_end, lambda: run_exmc_gpu(
                    name, chains, args.warmup, args.draws, args.seed, "chees"))
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpyro
    meta["numpyro"], meta["jax"] = numpyro.__version__, jax.__version__
    phase_end = began + args.budget
    for chains in chain_counts:
        for name in names:
            record("NumPyro", name, chains, phase_end, lambda: run_numpyro(
                name, chains, args.warmup, args.draws, args.seed, chains == chain_counts[0],
                phase_end))
    write(out, rows, meta)


def write(out, rows, meta):
    (out / "gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# GPU race ({meta.get('gpu', 'simulator' if meta.get('smoke') else '?')})", "",
             f"{meta.get('warmup', 20)} warmup + {meta.get('draws', 20)} draws per chain; "
             "ESS = min bulk ESS over parameters, all chains; ESS/s over sampling seconds "
             "(NumPyro's include JAX's compilation unless a second-run time is shown).", "",
             "| model | chains | sampler | ESS/s | ESS | seconds | compile s | grad/draw | "
             "divergences | kernel share | idle lanes | idle lanes per draw (warmup, "
             "sampling) | steps/chain/launch | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f="{:.3g}": "" if v is None else f.format(v)  # noqa: E731
    for r in rows:
        note = r.get("skipped") or r.get("error") or ""
        if r.get("chains_run", r["chains"]) != r["chains"]:
            note = f"CPU throughput of the {r['chains_run']}-chain run"
        if "seconds_second_run" in r:
            note = f"first run {r['seconds_with_compile']:.1f} s with compilation"
        per_draw = "" if "idle_lane_share_per_draw" not in r else (
            f"{r['idle_lane_share_per_draw']:.0%} ({fmt(r['idle_lane_share_warmup_per_draw'], '{:.0%}')}"
            f", {r['idle_lane_share_sampling_per_draw']:.0%})")
        lines.append(f"| {r['model']} | {r['chains']} | {r['sampler']} | {fmt(r.get('ess_per_s'))}"
                     f" | {fmt(r.get('ess'), '{:.0f}')} | {fmt(r.get('seconds'))} | "
                     f"{fmt(r.get('compile_s'))} | {fmt(r.get('gradients_per_draw'))} | "
                     f"{fmt(r.get('divergences'), '{}')} | {fmt(r.get('kernel_share'), '{:.0%}')} | "
                     f"{fmt(r.get('idle_lane_share'), '{:.0%}')} | {per_draw} | "
                     f"{fmt(r.get('steps_per_chain_per_launch'))} | {note} |")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
