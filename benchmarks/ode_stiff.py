"""RK45 against the stiff SDIRK4 on Robertson's kinetics: step attempts, and CPU time of one
log density and gradient (compiled), at rtol 1e-6 (atol 1e-10), outputs at t = 0.1, 1, 10.

    python benchmarks/ode_stiff.py   # writes benchmarks/results/ode_stiff.md

Step attempts come from the NumPy twins of the compiled solvers (``exmc/ir/recursion.py``:
the same algorithm, step for step).  Times are CPU seconds (``time.process_time``) per call,
the median of 5 batches taken side by side in one process (the machine is shared).
"""
import time
from pathlib import Path

import numpy as np

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model
from exmc.ir import recursion

RATES = np.array([0.04, 3e7, 1e4])
TIMES = np.array([0.1, 1.0, 10.0])
RTOL, ATOL = 1e-6, 1e-10


def rhs_numpy(t, y, k=RATES):
    return np.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                     k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2, k[1] * y[1] ** 2])


def model(method):
    def rhs(t, y, k):
        return em.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
                         k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] * y[1], k[1] * y[1] * y[1]])
    y = em.ode_solve(rhs, np.array([1.0, 0.0, 0.0]), TIMES, params=[em.exp(ref("log_k"))],
                     method=method, rtol=RTOL, atol=ATOL, max_steps=20_000)
    return (exmc.Builder().rv("log_k", exmc.Normal(0.0, 1.0, shape=3))
            .potential("u", em.sum(y * np.array([1.0, 1e4, 1.0]))))


def cpu_per_call(cm, z, calls):
    batches = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(calls):
            cm.logp_and_grad(z)
        batches.append((time.process_time() - start) / calls)
    return float(np.median(batches))


def main():
    z = np.log(RATES)
    with np.errstate(all="ignore"):
        counts = {m: solve(rhs_numpy, [1.0, 0.0, 0.0], 0.0, TIMES, RTOL, ATOL, 100_000)[1]
                  for m, solve in (("rk45", recursion.dp45_solve), ("sdirk4", recursion.sdirk4_solve))}
    compiled = {m: compile_model(model(m)) for m in ("rk45", "sdirk4")}
    results = {m: (cm.logp_and_grad(z), cpu_per_call(cm, z, 20 if m == "rk45" else 200))
               for m, cm in compiled.items()}
    fd_error = {}
    for m, cm in compiled.items():
        fd = np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / 2e-6
                       for e in np.eye(len(z)) * 1e-6])
        fd_error[m] = float(np.max(np.abs(results[m][0][1] - fd) / np.abs(fd)))
    (lr, _, _), _ = results["rk45"]
    (ls, _, _), _ = results["sdirk4"]
    lines = ["# RK45 and SDIRK4 on Robertson's kinetics", "",
             "`python benchmarks/ode_stiff.py`: outputs at t = 0.1, 1, 10; rtol 1e-6, atol 1e-10;",
             "CPU seconds per log density and gradient (median of 5 batches, one process); the",
             "gradient's largest relative difference from central finite differences (step 1e-6)",
             "of the same compiled density.", "",
             "| method | step attempts | CPU s per logp+grad | gradient vs finite differences |",
             "|---|---|---|---|"]
    lines += [f"| {m} | {counts[m]} | {results[m][1]:.2e} | {fd_error[m]:.1e} |"
              for m in ("rk45", "sdirk4")]
    lines += ["", f"The two log densities agree to {abs(lr - ls) / abs(lr):.1e} (relative).  RK45's",
              "gradient, exact for its step sizes held fixed, misses how those sizes (set by",
              "stability, not accuracy, on a stiff system) move with the parameters; SDIRK4's",
              "steps are set by accuracy, and its gradient matches."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / "ode_stiff.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
