"""Warnings after sampling, as PyMC gives them: divergences, R-hat, ESS, tree depth, E-BFMI.

Each check is one line naming the chains or variables concerned and what to try.  The
numbers are ArviZ's (``az.rhat``, ``az.ess`` with ``method="bulk"`` and ``"tail"``,
``az.bfmi``); thresholds are those of PyMC and Stan: R-hat above 1.01, bulk or tail ESS
under 100 per chain (Vehtari et al. 2021, "Rank-normalization, folding, and localization"),
E-BFMI under 0.3 (Betancourt 2016).  R-hat and ESS need at least 2 chains and 100 draws
each, as in PyMC; below that they would mostly warn about the run's length.
"""
from __future__ import annotations

import warnings

import numpy as np

RHAT_LIMIT = 1.01
ESS_PER_CHAIN = 100
BFMI_LIMIT = 0.3
MIN_DRAWS = 100
MAX_LISTED = 8  # variables named in one warning


class SamplingWarning(UserWarning):
    """A sign that the posterior draws may not be trustworthy (divergences, R-hat, ESS, ...)."""


def _listing(values, fmt):
    """'a (1.05), b[2] (1.03)': the worst first, at most MAX_LISTED."""
    worst = sorted(values.items(), key=lambda kv: kv[1][0])
    text = ", ".join(f"{name}{where} ({fmt(value)})" for name, (_, value, where) in
                     worst[:MAX_LISTED])
    if len(worst) > MAX_LISTED:
        text += f" and {len(worst) - MAX_LISTED} more"
    return text


def _per_variable(dataset, names, bad, key):
    """{name: (sort key, value, '[i, j]' of the worst element)} for variables with a bad element."""
    found = {}
    for name in names:
        values = np.asarray(dataset[name].values, dtype=float)
        flagged = bad(values)
        if not np.any(flagged):
            continue
        scores = np.where(flagged, key(values), np.inf)
        index = np.unravel_index(int(np.argmin(scores)), values.shape) if values.ndim else ()
        where = f"[{', '.join(map(str, index))}]" if index else ""
        found[name] = (float(scores[index]), float(values[index]), where)
    return found


def check(idata, variables=None, max_tree_depth=None):
    """The warnings for ``idata``, as a list of one-line strings (empty when all is well).

    ``variables``: the sampled variables to check (default: every posterior variable).
    """
    import arviz as az

    messages = []
    post, stats = idata.posterior, idata.sample_stats
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    total = chains * draws
    diverging = np.asarray(stats["diverging"].values, dtype=bool)
    per_chain = diverging.sum(axis=1)
    if per_chain.sum():
        parts = ", ".join(f"chain {c}: {int(n)}" for c, n in enumerate(per_chain) if n)
        messages.append(
            f"{int(per_chain.sum())} divergences after warmup ({per_chain.sum() / total:.1%} of "
            f"{total} draws; {parts}): the posterior may be biased there; raise target_accept "
            f"(e.g. 0.95) or reparameterise (e.g. non-centred)")
    if max_tree_depth is not None and "tree_depth" in stats:
        saturated = int((np.asarray(stats["tree_depth"].values) >= max_tree_depth).sum())
        if saturated:
            messages.append(
                f"{saturated} draws ({saturated / total:.1%}) reached the maximum tree depth "
                f"{max_tree_depth}: sampling is inefficient; raise max_tree_depth or "
                f"reparameterise")
    if "energy" in stats and draws > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bfmi = np.atleast_1d(az.bfmi(idata))
        low = [c for c, b in enumerate(bfmi) if np.isfinite(b) and b < BFMI_LIMIT]
        if low:
            messages.append(
                f"E-BFMI below {BFMI_LIMIT} in chain(s) {', '.join(map(str, low))} "
                f"({', '.join(f'{bfmi[c]:.2f}' for c in low)}): the momentum resampling explores "
                f"the energy poorly; reparameterise (heavy tails or a funnel)")
    names = [n for n in (variables if variables is not None else post.data_vars) if n in post]
    if chains < 2 or draws < MIN_DRAWS or not names:
        return messages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant variables give NaN with a RuntimeWarning
        rhat = az.rhat(post[names])
        bulk = az.ess(post[names], method="bulk")
        tail = az.ess(post[names], method="tail")
    high = _per_variable(rhat, names, lambda v: np.isfinite(v) & (v > RHAT_LIMIT), lambda v: -v)
    if high:
        messages.append(f"R-hat above {RHAT_LIMIT} for {_listing(high, lambda v: f'{v:.3f}')}: "
                        f"the chains do not agree; run longer or reparameterise")
    floor = ESS_PER_CHAIN * chains
    for label, ess in (("bulk", bulk), ("tail", tail)):
        low = _per_variable(ess, names, lambda v: np.isfinite(v) & (v < floor), lambda v: v)
        if low:
            messages.append(f"{label} ESS below {floor} ({ESS_PER_CHAIN} per chain) for "
                            f"{_listing(low, lambda v: f'{v:.0f}')}: estimates of "
                            f"{'means' if label == 'bulk' else 'intervals and tails'} are "
                            f"imprecise; draw more")
    return messages


def warn(idata, variables=None, max_tree_depth=None, stacklevel=3):
    """Emit ``check``'s messages as ``SamplingWarning``s; returns them."""
    messages = check(idata, variables, max_tree_depth)
    for message in messages:
        warnings.warn(message, SamplingWarning, stacklevel=stacklevel)
    return messages
