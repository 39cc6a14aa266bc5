"""The tables every reference-posterior benchmark writes (posteriordb_reference.py,
posteriordb_simplex.py, nutpie_reference.py): one row per posterior, one per parameter."""
import numpy as np

EXPLAIN = ("z = (exmc mean - reference mean) / sqrt(MCSE_exmc^2 + MCSE_ref^2); "
           "sd ratio = exmc sd / reference sd; z of the 5%, 50% and 95% quantiles: the same "
           "with each run's quantile MCSE.")
SUMMARY = ["parameters", "worst abs z (mean)", "worst abs z (quantiles)", "worst sd ratio",
           "divergences", "min ESS", "seconds"]


def header(columns):
    return [f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]


def summary_cells(r):
    """The SUMMARY cells of one posterior's result."""
    ps = r["parameters"].values()
    ratios = [p["sd_ratio"] for p in ps]
    return [str(len(ratios)), f"{max(abs(p['z']) for p in ps):.2f}",
            f"{max(abs(z) for p in ps for z in p['quantile_z'].values()):.2f}",
            f"{max(ratios, key=lambda x: abs(np.log(x))):.3f}", str(r["divergences"]),
            f"{r['min_ess']:.0f}", f"{r['seconds']:.0f}"]


def parameter_table(results):
    lines = header(["posterior", "parameter", "exmc mean", "MCSE", "reference mean",
                    "reference sd", "z", "sd ratio", "z of 5%, 50%, 95%"])
    for name, r in results.items():
        for label, p in r["parameters"].items():
            quantiles = ", ".join(f"{z:.2f}" for z in p["quantile_z"].values())
            lines.append(f"| {name} | {label} | {p['mean']:.4g} | {p['mcse']:.2g} | "
                         f"{p['reference_mean']:.4g} | {p['reference_sd']:.3g} | {p['z']:.2f} | "
                         f"{p['sd_ratio']:.3f} | {quantiles} |")
    return lines
