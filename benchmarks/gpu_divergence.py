"""How much of a GPU warp per-thread NUTS leaves idle: the lockstep cost, from real sampling stats.

    python benchmarks/gpu_divergence.py          # 256 chains of 1000 + 1000, ~2 min of CPU
    python benchmarks/gpu_divergence.py --chains 64 --out /tmp/d
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_divergence.py --chees eight_schools_nc
        # also ChEES-HMC, 64 chains on the simulator (~35 min here; what the results hold)

The GPU path (``device="cuda"``) runs one chain per thread; the 32 threads of a warp
execute in lockstep, so a warp lasts as long as its chain with the most leapfrog steps
and the others' lanes idle meanwhile.  No GPU is needed to measure that cost: it is a
function of the leapfrog counts alone.  This script draws them with the CPU sampler
(the same algorithm and warmup as the GPU kernel, ``exmc/samplers/gpu/nuts.py``), chains
numbered as the device numbers its threads (chain c in warp c // 32), and computes, for
a kernel launch of L draws per chain (the device run starts at 10 and grows launches
to about half a second, at most 1000):

    idle-lane share = 1 - sum of the lanes' steps / sum over warps and launches of
                      (lanes in the warp) x (the warp's most steps in that launch)

exactly as ``exmc.runtime.gpu.DeviceReport`` does for a device run.  L = 1 is the
cost if lanes were synchronised at every draw; larger L lets a chain with short trees
run ahead into its next draws, so the idle share falls with L (it cannot fall below
the spread of the chains' total work).  Warmup and sampling are reported apart: warmup
trees are deeper and more uneven (before the metric is adapted).

Models: the logistic race model (d = 21) and eight schools non-centred (d = 10), as in
``benchmarks/gpu.py``.  Writes DIR/gpu_divergence.json and DIR/gpu_divergence.md.
``sampler="chees"`` (exmc/samplers/gpu/chees.py) has an idle share of 0 by
construction: every chain takes the same number of leapfrog steps per draw.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.gpu import MODEL_NAMES, exmc_columns, exmc_model, min_ess  # noqa: E402

WARP = 32
LAUNCH_SIZES = (1, 10, 100, 1000)


def leapfrog_counts(name, chains, warmup, draws, seed):
    """(chains, warmup + draws) leapfrog steps per draw from the CPU sampler, CPU seconds, and
    the minimum bulk ESS of the post-warmup draws."""
    from exmc.compiler import compile_model
    from exmc.runtime.chain import load_kernels, make_settings, run_chain, start_state
    from exmc.samplers.nuts import STAT_NAMES

    compiled = compile_model(exmc_model(name))
    settings = make_settings(warmup)
    load_kernels(compiled, settings, False)
    column = STAT_NAMES.index("n_steps")
    start = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    counts = np.zeros((chains, warmup + draws))
    kept = np.zeros((chains, draws, compiled.dim))
    for chain, sequence in enumerate(np.random.SeedSequence(seed).spawn(chains)):
        rng = np.random.Generator(np.random.PCG64(sequence))  # seeded as exmc.sample seeds
        result = run_chain(compiled, settings, start_state(compiled, None, rng, False), rng,
                           warmup + draws)
        counts[chain] = result.stats[:, column]
        kept[chain] = result.draws[warmup:]
    cpu_s = resource.getrusage(resource.RUSAGE_SELF).ru_utime - start
    return counts, cpu_s, min_ess(exmc_columns(compiled, kept))


def chees_run(name, chains, warmup, draws, seed):
    """ChEES-HMC on the device (a GPU, or the simulator with NUMBA_ENABLE_CUDASIM=1):
    (leapfrog counts (chains, warmup + draws), minimum bulk ESS, wall seconds)."""
    from exmc.compiler import compile_model
    from exmc.runtime.chain import make_settings
    from exmc.runtime.gpu import device_sampler, run_on_device
    from exmc.samplers.nuts import STAT_NAMES

    model = exmc_model(name)
    compiled = compile_model(model)
    sampler = device_sampler(model, compiled, make_settings(warmup), "chees")
    start = time.perf_counter()
    results, _ = run_on_device(sampler, np.random.SeedSequence(seed).spawn(chains), None,
                               warmup + draws, lambda *args: None, None)
    wall = time.perf_counter() - start
    counts = np.stack([r.stats[:, STAT_NAMES.index("n_steps")] for r in results])
    kept = np.stack([r.draws[warmup:] for r in results])
    return counts, min_ess(exmc_columns(compiled, kept)), wall


def efficiency(counts, ess, warmup, chains):
    """ESS per 1000 leapfrog steps, and per 1000 lane-steps of warp time (idle lanes count)."""
    sampling = counts[:, warmup:]
    share, _ = idle_share(sampling, sampling.shape[1])  # one launch: the most lenient case
    per_draw, _ = idle_share(sampling, 1)
    steps = sampling.sum()
    return {"chains": chains, "ess": ess, "steps_per_draw": float(sampling.mean()),
            "ess_per_1000_steps": 1000.0 * ess / steps,
            "idle_share_per_draw": per_draw, "idle_share_one_launch": share,
            # Warp time in lane-steps: steps / (1 - idle); best (one launch) and worst (per draw).
            "ess_per_1000_warp_steps_best": 1000.0 * ess * (1.0 - share) / steps,
            "ess_per_1000_warp_steps_worst": 1000.0 * ess * (1.0 - per_draw) / steps}


def idle_share(counts, launch):
    """(idle-lane share, leapfrog steps per chain per launch) for launches of ``launch`` draws.

    counts : (chains, draws) leapfrog steps; chain c runs in warp c // WARP.
    """
    chains, n = counts.shape
    lane_steps = warp_steps = 0.0
    launches = 0
    for first in range(0, n, launch):
        per_chain = counts[:, first:first + launch].sum(axis=1)
        launches += 1
        lane_steps += per_chain.sum()
        for lane0 in range(0, chains, WARP):
            warp = per_chain[lane0:lane0 + WARP]
            warp_steps += warp.size * warp.max()
    return 1.0 - lane_steps / warp_steps, lane_steps / (chains * launches)


def measure(counts, warmup):
    rows = []
    for phase, part in (("warmup", counts[:, :warmup]), ("sampling", counts[:, warmup:]),
                        ("all", counts)):
        for launch in LAUNCH_SIZES:
            if launch > part.shape[1]:
                continue
            share, per_launch = idle_share(part, launch)
            rows.append({"phase": phase, "draws_per_launch": launch, "idle_lane_share": share,
                         "steps_per_chain_per_launch": per_launch})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chees", default="", help="models to run ChEES-HMC on as well, on "
                        "the device (a GPU, or the simulator: NUMBA_ENABLE_CUDASIM=1)")
    parser.add_argument("--chees-chains", type=int, default=64)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"meta": {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                        "seed": args.seed, "warp": WARP, "python": platform.python_version(),
                        "date": time.strftime("%Y-%m-%d", time.gmtime())}, "models": {}}
    for name in args.models.split(","):
        counts, cpu_s, ess = leapfrog_counts(name, args.chains, args.warmup, args.draws,
                                             args.seed)
        sampling = counts[:, args.warmup:]
        results["models"][name] = {
            "cpu_seconds": cpu_s, "rows": measure(counts, args.warmup),
            "nuts": efficiency(counts, ess, args.warmup, args.chains),
            "mean_steps_per_draw_sampling": float(sampling.mean()),
            "sd_steps_per_draw_sampling": float(sampling.std()),
            "max_steps_per_draw_sampling": float(sampling.max()),
            "step_histogram_sampling": {int(k): int(v) for k, v in zip(
                *np.unique(sampling, return_counts=True))}}
        print(name, json.dumps(results["models"][name]["rows"]), flush=True)
        if name in args.chees.split(","):
            counts, ess, wall = chees_run(name, args.chees_chains, args.warmup, args.draws,
                                          args.seed)
            results["models"][name]["chees"] = {
                **efficiency(counts, ess, args.warmup, args.chees_chains), "wall_seconds": wall}
            print(name, "chees", json.dumps(results["models"][name]["chees"]), flush=True)
    (out / "gpu_divergence.json").write_text(json.dumps(results, indent=1))
    (out / "gpu_divergence.md").write_text(markdown(results))


def markdown(results):
    meta = results["meta"]
    lines = ["# Lockstep cost of per-thread NUTS on a GPU (idle lanes in a warp of 32)", "",
             f"{meta['chains']} chains of {meta['warmup']} warmup + {meta['draws']} draws, "
             f"seed {meta['seed']}, leapfrog counts from the CPU sampler (same algorithm as the "
             "GPU kernel); chain c in warp c // 32. Idle share = 1 - lane steps / (32 x warp's "
             f"most steps), per launch of L draws per chain ({meta['date']}; "
             "`python benchmarks/gpu_divergence.py`).", "",
             "| model | phase | L = draws per launch | idle-lane share | leapfrog steps per "
             "chain per launch |", "|---|---|---|---|---|"]
    for name, model in results["models"].items():
        for r in model["rows"]:
            lines.append(f"| {name} | {r['phase']} | {r['draws_per_launch']} | "
                         f"{r['idle_lane_share']:.1%} | {r['steps_per_chain_per_launch']:.4g} |")
    lines += ["", "| model | sampling: mean steps per draw | sd | max | steps per draw: count |",
              "|---|---|---|---|---|"]
    for name, model in results["models"].items():
        hist = ", ".join(f"{k}: {v}" for k, v in model["step_histogram_sampling"].items())
        lines.append(f"| {name} | {model['mean_steps_per_draw_sampling']:.3g} | "
                     f"{model['sd_steps_per_draw_sampling']:.3g} | "
                     f"{model['max_steps_per_draw_sampling']:.0f} | {hist} |")
    lines += ["", "Efficiency after warmup: minimum bulk ESS over parameters (all chains) per "
              "1000 leapfrog steps, and per 1000 lane-steps of warp time (steps / (1 - idle "
              "share)): best case one launch for all draws, worst case lanes meeting at every "
              "draw. NUTS from the CPU runs above; ChEES-HMC from the device sampler "
              "(`sampler=\"chees\"`; on the simulator here, so its seconds mean nothing).", "",
              "| model | sampler | chains | min ESS | steps per draw | ESS / 1000 steps | idle "
              "(one launch, per draw) | ESS / 1000 warp lane-steps (best, worst) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, model in results["models"].items():
        for sampler in ("nuts", "chees"):
            if sampler not in model:
                continue
            e = model[sampler]
            lines.append(f"| {name} | {'NUTS' if sampler == 'nuts' else 'ChEES-HMC'} | "
                         f"{e['chains']} | {e['ess']:.0f} | {e['steps_per_draw']:.3g} | "
                         f"{e['ess_per_1000_steps']:.3g} | {e['idle_share_one_launch']:.1%}, "
                         f"{e['idle_share_per_draw']:.1%} | {e['ess_per_1000_warp_steps_best']:.3g}"
                         f", {e['ess_per_1000_warp_steps_worst']:.3g} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
