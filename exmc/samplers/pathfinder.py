"""Pathfinder: normal approximations along L-BFGS paths, combined by Pareto-smoothed importance resampling.

Zhang, Carpenter, Gelman and Vehtari (2022), "Pathfinder: parallel quasi-Newton
variational inference", JMLR 23(306).  One path:

1. run L-BFGS on -log p from a random start, keeping every iterate and its gradient;
2. at each iterate theta_l, the L-BFGS inverse Hessian estimate
   ``Sigma_l = diag(alpha) + beta gamma beta^T`` (the compact form of Byrd, Nocedal and
   Schnabel 1994, from the last ``history_size`` position and gradient differences, with
   the diagonal ``alpha`` updated as Gilbert and Lemarechal 1989, eq. 4.9) gives the
   normal approximation ``N(theta_l + Sigma_l grad log p(theta_l), Sigma_l)``;
3. the approximation with the largest ELBO (a Monte Carlo estimate from
   ``num_elbo_draws`` draws) is the path's; draws come from it with their log density q.

Multi-path Pathfinder pools the draws of ``num_paths`` paths and resamples them with
Pareto-smoothed importance weights p / q (Vehtari et al. 2024, arviz's ``psislw``); the
Pareto k of those weights says how far the pooled approximation can be trusted.

Names: ``s`` position differences, ``y`` differences of the gradient of -log p,
``alpha`` the diagonal, ``u`` a standard normal draw.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from exmc.samplers.approximation import approximation_idata, log_densities, psis_weights

LOG_2PI = math.log(2.0 * math.pi)
CURVATURE_EPSILON = 1e-12  # a pair (s, y) enters the history only if s.y > eps |y|^2


class NormalApproximation(NamedTuple):
    """N(mean, Sigma) with Sigma = diag(alpha)^(1/2) (I + Q (L L^T - I) Q^T) diag(alpha)^(1/2).

    ``Q`` (d, k) has orthonormal columns and ``lower`` (k, k) is lower triangular (k = 0
    when Sigma is diagonal); ``log_det`` is log |Sigma|.
    """

    mean: np.ndarray
    alpha: np.ndarray
    Q: np.ndarray
    lower: np.ndarray
    log_det: float

    def sample(self, rng, n):
        """(draws (n, d), log q at them (n,))."""
        d = self.mean.size
        u = rng.standard_normal((n, d))
        x = u + ((u @ self.Q) @ (self.lower - np.eye(self.lower.shape[0])).T) @ self.Q.T
        draws = self.mean + np.sqrt(self.alpha) * x
        log_q = -0.5 * (self.log_det + np.sum(u * u, axis=1) + d * LOG_2PI)
        return draws, log_q

    def covariance(self):
        k = self.lower.shape[0]
        inner = np.eye(self.mean.size) + self.Q @ (self.lower @ self.lower.T - np.eye(k)) @ self.Q.T
        root = np.sqrt(self.alpha)
        return root[:, None] * inner * root[None, :]


class PathResult(NamedTuple):
    """One path: its chosen approximation's draws, and how it was found."""

    draws: np.ndarray  # (num_draws, d) unconstrained
    log_p: np.ndarray  # (num_draws,)
    log_q: np.ndarray  # (num_draws,)
    elbo: float  # of the chosen approximation
    iterations: int  # L-BFGS iterations made
    chosen: int  # index of the chosen iterate
    evaluations: int  # log density and gradient evaluations, L-BFGS and ELBO draws


class PathfinderResult(NamedTuple):
    """Multi-path Pathfinder's resampled draws and diagnostics (unconstrained scale)."""

    draws: np.ndarray  # (num_draws, d)
    log_p: np.ndarray
    log_q: np.ndarray
    path: np.ndarray  # (num_draws,) which path each draw came from
    pareto_k: float
    variance: np.ndarray  # (d,) importance-weighted posterior variance estimate
    paths: list  # PathResult per path that succeeded
    failed_paths: int


def one_blas_thread():
    """Limit BLAS to one thread where threadpoolctl is installed: L-BFGS-B and the small QR
    factorisations here call BLAS on tiny arrays, and threads spinning on a busy machine made
    a path ten times slower (measured: 4.1 s against 0.4 s for eight schools' four paths)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(1)


def lbfgs_path(compiled, start, history_size, max_iterations):
    """L-BFGS on -log p from ``start``: (positions (L+1, d), gradients of log p (L+1, d), evaluations).

    scipy's L-BFGS-B (no bounds); every accepted iterate is kept with its gradient.
    """
    from scipy.optimize import minimize

    seen = {}
    count = [0]

    def objective(x):
        count[0] += 1
        logp, grad, status = compiled.logp_and_grad(x)
        if status != 0 or not np.isfinite(logp) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(x)  # the line search steps back
        seen[x.tobytes()] = grad
        return -logp, -grad

    positions, grads = [], []

    def keep(x):
        grad = seen.get(x.tobytes())
        if grad is None:  # not the last evaluation: evaluate again
            _, grad, status = compiled.logp_and_grad(x)
        positions.append(np.array(x))
        grads.append(np.array(grad))
        seen.clear()  # the next iterate is one of the evaluations still to come

    keep(start)
    minimize(objective, start, jac=True, method="L-BFGS-B", callback=keep,
             options={"maxiter": max_iterations, "maxcor": history_size, "ftol": 1e-12,
                      "gtol": 1e-8})
    return np.array(positions), np.array(grads), count[0]


def update_diagonal(alpha, s, y):
    """Gilbert and Lemarechal (1989) eq. 4.9: the diagonal inverse Hessian after pair (s, y)."""
    a = np.dot(y * alpha, y)
    b = np.dot(y, s)
    c = np.dot(s / alpha, s)
    return b / (a / alpha + y * y - (a / c) * (s / alpha) ** 2)


def normal_approximation(position, grad, alpha, S, Y):
    """The Pathfinder normal at ``position`` from the L-BFGS history ``S``, ``Y`` (d, m).

    Returns None if the estimate is not positive definite (numerically).
    """
    d, m = S.shape
    if m == 0:
        return NormalApproximation(position + alpha * grad, alpha, np.zeros((d, 0)),
                                   np.zeros((0, 0)), float(np.sum(np.log(alpha))))
    SY = S.T @ Y
    R = np.triu(SY)
    try:
        R_inv = np.linalg.inv(R)
    except np.linalg.LinAlgError:
        return None
    beta = np.hstack([alpha[:, None] * Y, S])
    gamma = np.zeros((2 * m, 2 * m))
    gamma[:m, m:] = -R_inv
    gamma[m:, :m] = -R_inv.T
    gamma[m:, m:] = R_inv.T @ (np.diag(np.diag(SY)) + Y.T @ (alpha[:, None] * Y)) @ R_inv
    Q, R_tilde = np.linalg.qr(beta / np.sqrt(alpha)[:, None])
    k = Q.shape[1]
    try:
        lower = np.linalg.cholesky(np.eye(k) + R_tilde @ gamma @ R_tilde.T)
    except np.linalg.LinAlgError:
        return None
    log_det = float(np.sum(np.log(alpha)) + 2.0 * np.sum(np.log(np.diag(lower))))
    # mean = position + Sigma grad log p (a Newton step, Sigma estimating the inverse Hessian)
    Sigma_grad = alpha * grad + beta @ (gamma @ (beta.T @ grad))
    approx = NormalApproximation(position + Sigma_grad, alpha, Q, lower, log_det)
    return approx if np.all(np.isfinite(approx.mean)) and np.isfinite(log_det) else None


def path_approximations(positions, grads, history_size):
    """The normal approximation at each iterate after the first (None where not definite)."""
    d = positions.shape[1]
    alpha = np.ones(d)
    pairs = []
    out = []
    for l in range(1, len(positions)):
        s = positions[l] - positions[l - 1]
        y = grads[l - 1] - grads[l]  # gradient of -log p
        if np.dot(s, y) > CURVATURE_EPSILON * np.dot(y, y):
            alpha = update_diagonal(alpha, s, y)
            pairs = (pairs + [(s, y)])[-history_size:]
        if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
            out.append(None)
            continue
        S = np.array([p[0] for p in pairs]).T.reshape(d, len(pairs))
        Y = np.array([p[1] for p in pairs]).T.reshape(d, len(pairs))
        out.append(normal_approximation(positions[l], grads[l], alpha, S, Y))
    return out


def single_path(compiled, rng, start, history_size, max_iterations, num_elbo_draws, num_draws):
    """One Pathfinder path from ``start``; None if no approximation along it had a finite ELBO."""
    positions, grads, evaluations = lbfgs_path(compiled, start, history_size, max_iterations)
    best, best_elbo, chosen = None, -np.inf, -1
    for l, approx in enumerate(path_approximations(positions, grads, history_size), start=1):
        if approx is None:
            continue
        draws, log_q = approx.sample(rng, num_elbo_draws)
        log_p, _ = log_densities(compiled, draws)
        evaluations += num_elbo_draws
        elbo = float(np.mean(log_p - log_q))
        if elbo > best_elbo:  # NaN and -inf never win
            best, best_elbo, chosen = approx, elbo, l
    if best is None:
        return None
    draws, log_q = best.sample(rng, num_draws)
    log_p, _ = log_densities(compiled, draws)
    return PathResult(draws, log_p, log_q, best_elbo, len(positions) - 1, chosen,
                      evaluations + num_draws)


def multi_path(compiled, seed_sequence, num_paths=4, num_draws=1000, history_size=5,
               max_iterations=1000, num_elbo_draws=25, init=None):
    """Multi-path Pathfinder on a compiled model; a ``PathfinderResult``.

    Paths start uniformly in (-2, 2) on the unconstrained scale (``init`` values where
    given), each with its own child of ``seed_sequence``.
    """
    from exmc.runtime.chain import initial_point

    children = seed_sequence.spawn(num_paths + 1)
    paths = []
    with one_blas_thread():
        for child in children[:num_paths]:
            rng = np.random.Generator(np.random.PCG64(child))
            start, _, _ = initial_point(compiled, init, rng)
            path = single_path(compiled, rng, start, history_size, max_iterations,
                               num_elbo_draws, num_draws)
            if path is not None:
                paths.append(path)
    if not paths:
        raise ValueError(f"Pathfinder: none of the {num_paths} paths found a normal "
                         f"approximation with a finite ELBO; pass init= with plausible values")
    draws = np.concatenate([p.draws for p in paths])
    log_p = np.concatenate([p.log_p for p in paths])
    log_q = np.concatenate([p.log_q for p in paths])
    which = np.concatenate([np.full(num_draws, i) for i in range(len(paths))])
    weights, k = psis_weights(log_p - log_q)
    if not np.all(np.isfinite(weights)):
        raise ValueError("Pathfinder: no draw of the chosen approximations has a finite log "
                         "density; pass init= with plausible values")
    rng = np.random.Generator(np.random.PCG64(children[-1]))
    pick = rng.choice(draws.shape[0], size=num_draws, replace=True, p=weights)
    mean = weights @ draws
    variance = weights @ (draws - mean) ** 2
    return PathfinderResult(draws[pick], log_p[pick], log_q[pick], which[pick], float(k),
                            variance, paths, num_paths - len(paths))


def pathfinder(model, num_paths=4, num_draws=1000, seed=None, init=None, history_size=5,
               max_iterations=1000, num_elbo_draws=25, progressbar=True):
    """Approximate the posterior of ``model`` with multi-path Pathfinder.

    Parameters
    ----------
    model : Model
    num_paths : int
        Independent L-BFGS paths (Stan's ``num_paths``); their draws are pooled and
        importance-resampled.
    num_draws : int
        Draws returned, and draws taken from each path's chosen approximation.
    seed : int, optional
        Same seed, same draws.
    init : dict, optional
        Constrained starting values by variable name, shared by the paths; the others
        start uniformly in (-2, 2) on the unconstrained scale, each path its own.
    history_size : int
        L-BFGS history: pairs of position and gradient differences kept (Stan's default 5).
    max_iterations : int
        Most L-BFGS iterations per path.
    num_elbo_draws : int
        Draws per ELBO estimate of each approximation along a path (Stan's default 25).
    progressbar : bool
        Say when a new model is being compiled.

    Returns
    -------
    arviz.InferenceData
        ``posterior``: one chain of ``num_draws`` resampled draws (constrained values and
        deterministics, as ``exmc.sample``'s); ``sample_stats``: ``lp`` (log density,
        unconstrained), ``log_q`` (the approximation's) and ``path``; ``attrs``:
        ``pareto_k`` of the importance weights (below 0.7 the draws are usable; above,
        treat them as a rough start only), each path's ``elbo``, ``iterations`` and
        ``evaluations``, ``failed_paths`` and ``time``.
    """
    from exmc.compiler import compile_model
    from exmc.ir.builder import Model
    from exmc.runtime.notices import CompileNotice

    if not isinstance(model, Model):
        raise TypeError(f"exmc.pathfinder needs a model from Builder or @exmc.model, got "
                        f"{type(model).__name__}")
    check_settings(num_paths=num_paths, num_draws=num_draws, history_size=history_size,
                   max_iterations=max_iterations, num_elbo_draws=num_elbo_draws)
    with CompileNotice(enabled=progressbar):
        compiled = compile_model(model)
        log_densities(compiled, np.zeros((1, compiled.dim)))  # compile (or load) the loop here
    seed_sequence = np.random.SeedSequence(seed)
    began = time.perf_counter()
    result = multi_path(compiled, seed_sequence, num_paths, num_draws, history_size,
                        max_iterations, num_elbo_draws, init)
    seconds = time.perf_counter() - began
    attrs = {"sampler": "Pathfinder", "seed": str(seed_sequence.entropy),
             "pareto_k": result.pareto_k, "num_paths": num_paths,
             "failed_paths": result.failed_paths, "time": seconds,
             "elbo": [p.elbo for p in result.paths],
             "iterations": [p.iterations for p in result.paths],
             "evaluations": [p.evaluations for p in result.paths]}
    stats = {"lp": result.log_p[None], "log_q": result.log_q[None], "path": result.path[None]}
    return approximation_idata(compiled, result.draws[None], stats, attrs)


def check_settings(**values):
    """Each setting an integer >= 1, else a ValueError naming it."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
