"""Compile time of exmc models, each figure taken in a fresh Python process.

    python benchmarks/compile_time.py                        # parts a, b and c
    python benchmarks/compile_time.py --parts a --models simple,sv --no-nutpie
    python benchmarks/compile_time.py --parts c --sizes 10,40,160,1000 --big 10000

Every measurement runs in a new Python process whose EXMC_CACHE_DIR is a new, empty
folder (no generated model module), while Numba's cache of the sampler's own kernels
(exmc's __pycache__ / NUMBA_CACHE_DIR, left as they are) has been filled beforehand by a
throwaway run.  So a figure is what a user sees for a model new to their machine.

a. Time to first draw of a new model: the wall seconds of ``exmc.sample(model, chains=1,
   num_warmup=1, num_samples=1)``, for the seven race models and a 3-predictor linear
   regression; both for the FIRST new model of a process (it also loads the sampler from
   Numba's cache) and for a LATER new model (a process that has already sampled other new
   models).  Beside it, in the same run, nutpie's ``compile_pymc_model`` of the same model,
   also first in a fresh process and later in a process that compiled other models.
b. A model differing only in constants or data values from one already in the cache: time to
   first draw in a fresh process, and the Numba dispatcher statistics of the generated
   module's functions (misses must be 0: no compilation, machine code loaded from disk).
c. Compile time against model size: seconds of ``exmc.compiler.compile_model`` for chains
   of about 10, 40, 160 and 1,000 operation nodes (scalar random variables; scalar
   deterministics), and for a model of 10,000 scalar random variables.

Writes results/compile_time.json and compile_time.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RACE = ["simple", "medium", "stress", "eight_schools", "funnel", "logistic", "sv", "regression"]


# ---- models made in the child processes --------------------------------------------------
def build(name):
    """An exmc model by name: the race models, the regression, variants and size chains."""
    from benchmarks.models import EXTRA, MODELS, SCALE
    for table in (MODELS, EXTRA, SCALE):
        if name in table:
            return table[name]()
    if name in VARIANTS:
        return VARIANTS[name]()
    kind, n = name.rsplit(":", 1)
    return {"rv_chain": rv_chain, "det_chain": det_chain}[kind](int(n))


def tiny():
    """The model a process samples first when the model under test must not be the first."""
    import exmc
    return exmc.Builder().rv("z", exmc.Normal(0.0, 1.0)).rv("w", exmc.Normal("z", 2.0))


def medium_variant(sigma_scale=2.0, shift=0.0, scale=1.0):
    """The race's ``medium`` model with its sigma prior scale or its data values changed."""
    import exmc
    from exmc import Builder, HalfNormal, Normal
    from benchmarks.models import load
    d = load("medium")
    return (Builder()
            .rv("mu", Normal(0.0, 10.0))
            .rv("tau", HalfNormal(5.0))
            .rv("a1", Normal("mu", "tau"))
            .rv("a2", Normal("mu", "tau"))
            .rv("sigma", HalfNormal(sigma_scale))
            .obs("y1", Normal("a1", "sigma"), d["y1"] * scale + shift)
            .obs("y2", Normal("a2", "sigma"), d["y2"] * scale + shift)), exmc


def logistic_variant(seed=None):
    """The race's ``logistic`` model; with a seed, other X and y values of the same shapes."""
    import numpy as np
    import exmc
    from exmc import Bernoulli, Builder, Normal
    from benchmarks.models import load
    d = load("logistic")
    X, y = d["X"], d["y"]
    if seed is not None:
        g = np.random.default_rng(seed)
        X = g.normal(size=X.shape)
        y = (g.uniform(size=y.shape) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    return (Builder()
            .rv("alpha", Normal(0.0, 10.0))
            .rv("beta", Normal(0.0, 10.0, shape=X.shape[1]))
            .obs("y", Bernoulli(logit_p=exmc.ref("alpha") + X @ exmc.ref("beta")), y))


VARIANTS = {
    "medium_base": lambda: medium_variant()[0],
    "medium_sigma_2.5": lambda: medium_variant(sigma_scale=2.5)[0],  # HalfNormal(2) -> (2.5)
    "medium_new_data": lambda: medium_variant(shift=3.0, scale=1.5)[0],
    "logistic_base": lambda: logistic_variant(),
    "logistic_new_data": lambda: logistic_variant(seed=99),
}
# (variant, the model already in the cache, what differs)
PAIRS = [("medium_sigma_2.5", "medium_base", "constant: sigma ~ HalfNormal(2) -> HalfNormal(2.5)"),
         ("medium_new_data", "medium_base", "data values: y1, y2 -> 1.5 y + 3"),
         ("logistic_new_data", "logistic_base", "data values: X (500x20) and y redrawn")]


def rv_chain(n):
    """n scalar random variables, x0 ~ Normal(0, 1), x_k ~ Normal(x_{k-1}, 1)."""
    import exmc
    b = exmc.Builder().rv("x0", exmc.Normal(0.0, 1.0))
    for k in range(1, n):
        b.rv(f"x{k}", exmc.Normal(f"x{k - 1}", 1.0))
    return b


def det_chain(n):
    """One variable z, n scalar deterministics d_k = tanh(d_{k-1}) * 0.9 + w (w = 0.1 z), data."""
    import numpy as np
    import exmc
    from exmc import math, ref
    b = exmc.Builder().rv("z", exmc.Normal(0.0, 1.0)).det("w", 0.1 * ref("z")).det("d0", ref("z"))
    for k in range(1, n + 1):
        b.det(f"d{k}", math.tanh(ref(f"d{k - 1}")) * 0.9 + ref("w"))
    return b.obs("y", exmc.Normal(ref(f"d{n}"), 1.0), np.array([0.1, 0.2, -0.3]))


# ---- child process entry points -------------------------------------------------------------
def _dispatcher_stats(module):
    """Numba cache statistics of the generated module's compiled functions."""
    out = {}
    for attr in sorted(vars(module)):
        fn = getattr(module, attr)
        stats = getattr(fn, "stats", None)
        if stats is not None and hasattr(stats, "cache_misses"):
            out[attr] = {"cache_hits": int(sum(stats.cache_hits.values())),
                         "cache_misses": int(sum(stats.cache_misses.values())),
                         "signatures": len(getattr(fn, "signatures", []))}
        elif hasattr(fn, "cache_hits") and hasattr(fn, "address"):  # a cfunc
            out[attr] = {"cache_hits": int(fn.cache_hits)}
    return out


def _code():
    """The compiler code version this process compiled with (the sources change under us)."""
    from exmc.compiler import _code_version
    return _code_version()


def _sampler_misses():
    from exmc.samplers.nuts import run_block
    stats = getattr(run_block, "stats", None)
    return None if stats is None else int(sum(stats.cache_misses.values()))


def child_exmc(names, stats=False):
    """Sample each model 1 + 1 in turn; time to first draw of each.

    ``first_draw_s``: until ``exmc.sample`` returns its InferenceData (in the first call of
    a process this includes importing ArviZ); ``first_streamed_draw_s``: until the first
    draw reaches a ``stream_to`` callback.
    """
    start = time.perf_counter()
    import exmc
    from exmc.compiler import compile_model
    imported = time.perf_counter() - start
    rows = []
    for name in names:
        t0 = time.perf_counter()
        model = tiny() if name == "tiny" else build(name)
        built = time.perf_counter() - t0
        streamed = []

        def on_message(msg, streamed=streamed):
            if not streamed and msg.get("type") == "exmc_sample":
                streamed.append(time.perf_counter())
        arviz_before = "arviz" in sys.modules
        t0 = time.perf_counter()
        idata = exmc.sample(model, chains=1, num_warmup=1, num_samples=1, seed=1,
                            progressbar=False, stream_to=on_message)
        first = time.perf_counter() - t0
        row = {"model": name, "build_s": built, "first_draw_s": first,
               "first_streamed_draw_s": streamed[0] - t0 if streamed else None,
               "arviz_imported_before": arviz_before,
               "compile_time_attr_s": float(idata.attrs["compile_time"]),
               "sampler_cache_misses_so_far": _sampler_misses(), "code": _code()}
        if stats:
            module = compile_model(model).module  # the module sample() loaded, no new work
            row["module_file"] = os.path.basename(module.__file__)
            row["dispatchers"] = _dispatcher_stats(module)
        rows.append(row)
    return {"import_s": imported, "rows": rows}


def child_nutpie(names):
    """nutpie.compile_pymc_model of each model in turn (the first call also warms pytensor)."""
    start = time.perf_counter()
    import nutpie
    import pymc  # noqa: F401
    from benchmarks.peers import pymc_model
    imported = time.perf_counter() - start
    rows = []
    for name in names:
        t0 = time.perf_counter()
        model = pymc_model("simple" if name == "tiny" else name)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        nutpie.sample(compiled, draws=1, tune=1, chains=1, cores=1, seed=1, progress_bar=False)
        rows.append({"model": name, "build_s": built, "compile_s": compile_s,
                     "sample_1_1_s": time.perf_counter() - t0})
    return {"import_s": imported, "rows": rows}


def child_size(name, first_draw=True):
    """compile_model of a size-chain model, with lowering and source emission timed apart."""
    start = time.perf_counter()
    import numpy as np
    import exmc
    from exmc.compiler import compile_model
    from exmc.compiler.emit import module_source
    from exmc.compiler.lower import lower_model
    from exmc.ir.serialize import structure_hash
    imported = time.perf_counter() - start
    t0 = time.perf_counter()
    model = build(name)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = compile_model(model)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled.logp_and_grad(np.zeros(compiled.dim))
    first_gradient = time.perf_counter() - t0
    t0 = time.perf_counter()
    program = lower_model(model)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    source = module_source(program, structure_hash(model))
    emit_s = time.perf_counter() - t0
    ops = sum(1 for n in program.nodes if n.op not in ("input", "data"))
    row = {"model": name, "import_s": imported, "build_s": built, "compile_model_s": compile_s,
           "first_gradient_s": first_gradient, "lower_s": lower_s, "emit_source_s": emit_s,
           "nodes": len(program.nodes), "operation_nodes": ops, "dim": compiled.dim,
           "source_lines": source.count("\n"), "code": _code()}
    if first_draw:
        t0 = time.perf_counter()
        exmc.sample(model, chains=1, num_warmup=1, num_samples=1, seed=1, progressbar=False)
        row["sample_1_1_after_compile_s"] = time.perf_counter() - t0
    return row


CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks import compile_time as ct
out = getattr(ct, {fn!r})(*{args!r})
print("RESULT " + json.dumps(out))
"""


def in_fresh_process(fn, *args, cache_dir=None, timeout=600):
    """Run compile_time.<fn>(*args) in a new Python process; its result, or an error dict."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="exmc_ct_") as tmp:
        env["EXMC_CACHE_DIR"] = str(cache_dir) if cache_dir is not None else tmp
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), fn=fn,
                                                                      args=list(args))],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        wall = time.perf_counter() - start
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            if isinstance(result, dict):
                result["process_wall_s"] = wall
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
    return {"error": "\n".join(tail), "returncode": done.returncode}


def code_state():
    """What was measured: HEAD, uncommitted files of exmc/, and the compiler's code digest."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except Exception:  # not a checkout
            return None
    from exmc.compiler import _code_version
    dirty = git("status", "--short", "--", "exmc")
    return {"head": git("rev-parse", "--short", "HEAD"), "compiler_code_version": _code_version(),
            "uncommitted_exmc_files": dirty.split("\n") if dirty else []}


def log(*a):
    print(*a, flush=True)


# ---- parts ---------------------------------------------------------------------------------
def warm_caches(nutpie):
    """Fill Numba's cache of the sampler (and pytensor's / nutpie's) with throwaway runs."""
    r = in_fresh_process("child_exmc", ["tiny"])
    log("warm-up exmc:", "error" in r and r["error"] or f"{r['process_wall_s']:.1f} s")
    if nutpie:
        r = in_fresh_process("child_nutpie", ["tiny"])
        log("warm-up nutpie:", "error" in r and r["error"] or f"{r['process_wall_s']:.1f} s")


def part_a(models, nutpie, timeout):
    out = {"first": {}, "later": {}, "nutpie_first": {}, "nutpie_later": {}}
    for name in models:
        r = in_fresh_process("child_exmc", [name], timeout=timeout)
        out["first"][name] = r if "error" in r else {**r["rows"][0], "import_s": r["import_s"]}
        log(f"a  exmc first   {name:14s}", _short(out["first"][name], "first_draw_s"))
        if nutpie:
            r = in_fresh_process("child_nutpie", [name], timeout=timeout)
            out["nutpie_first"][name] = (r if "error" in r
                                         else {**r["rows"][0], "import_s": r["import_s"]})
            log(f"a  nutpie first {name:14s}", _short(out["nutpie_first"][name], "compile_s"))
    # Later new models: one process samples a tiny new model, then every model in turn.
    r = in_fresh_process("child_exmc", ["tiny"] + models, timeout=timeout * 3)
    if "error" in r:
        out["later"]["error"] = r["error"]
    else:
        out["later"] = {row["model"]: row for row in r["rows"][1:]}
    for name in models:
        log(f"a  exmc later   {name:14s}", _short(out["later"].get(name, r), "first_draw_s"))
    if nutpie:
        r = in_fresh_process("child_nutpie", ["tiny"] + models, timeout=timeout * 3)
        if "error" in r:
            out["nutpie_later"]["error"] = r["error"]
        else:
            out["nutpie_later"] = {row["model"]: row for row in r["rows"][1:]}
        for name in models:
            log(f"a  nutpie later {name:14s}", _short(out["nutpie_later"].get(name, r), "compile_s"))
    return out


def part_b(timeout):
    out = []
    for variant, base, what in PAIRS:
        with tempfile.TemporaryDirectory(prefix="exmc_ct_b_") as cache:
            first = in_fresh_process("child_exmc", [base], True, cache_dir=cache, timeout=timeout)
            second = in_fresh_process("child_exmc", [variant], True, cache_dir=cache,
                                      timeout=timeout)
        entry = {"variant": variant, "cached": base, "differs_in": what}
        for key, r in (("base_run", first), ("variant_run", second)):
            entry[key] = r if "error" in r else {**r["rows"][0], "import_s": r["import_s"]}
        if "error" not in first and "error" not in second:
            entry["same_module_file"] = (entry["base_run"]["module_file"]
                                         == entry["variant_run"]["module_file"])
            entry["variant_misses"] = sum(d.get("cache_misses", 0)
                                          for d in entry["variant_run"]["dispatchers"].values())
        log(f"b  {variant:18s} after {base:14s}", _short(entry["variant_run"], "first_draw_s"),
            "misses", entry.get("variant_misses"), "same file", entry.get("same_module_file"))
        out.append(entry)
    return out


def part_c(sizes, big, timeout):
    out = []
    jobs = [f"rv_chain:{n}" for n in sizes] + [f"det_chain:{max(1, (n - 3) // 3)}" for n in sizes]
    if big:
        jobs.append(f"rv_chain:{big}")
    for name in jobs:
        r = in_fresh_process("child_size", name, timeout=timeout)
        r.setdefault("model", name)
        out.append(r)
        log(f"c  {name:18s}", _short(r, "compile_model_s"),
            "" if "error" in r else f"ops {r['operation_nodes']}")
    return out


def _short(r, key):
    if "error" in r:
        return "ERROR " + r["error"].splitlines()[-1]
    return f"{r[key]:.2f} s"


# ---- report --------------------------------------------------------------------------------
def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def _get(d, key):
    return None if d is None or "error" in d else d.get(key)


def markdown(res, meta):
    lines = [f"# Compile time ({meta['date']}, {meta['machine']}, {meta['cores']} cores, "
             f"exmc {meta['exmc']}, numba {meta['numba']}, nutpie {meta.get('nutpie', '-')})", "",
             f"Command: `{meta['command']}`", "",
             f"Code measured: HEAD {meta.get('head')}, compiler code version "
             f"{meta.get('compiler_code_version')}, uncommitted files under exmc/: "
             f"{', '.join(f.split()[-1] for f in meta.get('uncommitted_exmc_files', [])) or 'none'}.",
             "",
             "Every figure is from a fresh Python process with an empty EXMC_CACHE_DIR and Numba's "
             "cache of the sampler already filled; the machine is shared, so figures are noisy.", ""]
    a = res.get("a")
    if a:
        lines += ["## a. Time to first draw of a new model (s)", "",
                  "exmc: wall seconds of `exmc.sample(model, chains=1, num_warmup=1, "
                  "num_samples=1)` until it returns (import not included; in a process's first "
                  "call it includes importing ArviZ for the InferenceData); *first streamed draw*: "
                  "until the first draw reaches a `stream_to` callback of that call; *first* = the first model of the "
                  "process, *later* = after other new models were sampled in that process. "
                  "nutpie: `nutpie.compile_pymc_model` (pymc model built beforehand, not "
                  "included), likewise first and later. Ratio = exmc / nutpie (goal <= 0.5).", "",
                  "| model | exmc first | exmc later | nutpie first | nutpie later | "
                  "ratio first | ratio later | exmc first: first streamed draw | "
                  "exmc first: compile_time attr | exmc import | pymc+nutpie import |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in meta["models"]:
            ef, el = a["first"].get(name), a["later"].get(name)
            nf, nl = a["nutpie_first"].get(name), a["nutpie_later"].get(name)

            def ratio(e, n):
                x, y = _get(e, "first_draw_s"), _get(n, "compile_s")
                return x / y if x is not None and y else None
            cells = [name, fmt(_get(ef, "first_draw_s")), fmt(_get(el, "first_draw_s")),
                     fmt(_get(nf, "compile_s")), fmt(_get(nl, "compile_s")),
                     fmt(ratio(ef, nf)), fmt(ratio(el, nl)),
                     fmt(_get(ef, "first_streamed_draw_s")), fmt(_get(ef, "compile_time_attr_s")), fmt(_get(ef, "import_s")),
                     fmt(_get(nf, "import_s"))]
            lines.append("| " + " | ".join(cells) + " |")
        errors = [(k, n, v["error"]) for k in a for n, v in a[k].items()
                  if isinstance(v, dict) and "error" in v]
        for k, n, e in errors:
            lines += ["", f"{k} {n} failed:", "```", e, "```"]
        misses = {n: _get(r, "sampler_cache_misses_so_far") for n, r in a["first"].items()}
        lines += ["", "Sampler kernel (`run_block`) Numba cache misses in the *first* processes: "
                  + ", ".join(f"{n} {m}" for n, m in misses.items())
                  + " (0 = the sampler was loaded from the cache, as intended).", ""]
    b = res.get("b")
    if b:
        lines += ["## b. A model differing only in constants or data from one in the cache", "",
                  "Two fresh processes sharing one EXMC_CACHE_DIR: the first samples the cached "
                  "model, the second the variant.  Dispatcher statistics are those of the "
                  "generated module's functions in the second process.", "",
                  "| variant | differs from the cached model in | time to first draw s | "
                  "first streamed draw s | compile_time attr s | exmc import s | same module file | "
                  "dispatcher stats (variant process) | base run misses |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in b:
            v, base = e["variant_run"], e["base_run"]
            stats = "; ".join(f"{k}: " + ", ".join(f"{kk.replace('cache_', '')} {vv}"
                                                   for kk, vv in d.items() if kk != "signatures")
                              for k, d in (_get(v, "dispatchers") or {}).items())
            base_misses = sum(d.get("cache_misses", 0) for d in (_get(base, "dispatchers") or {}).values())
            lines.append(f"| {e['variant']} | {e['differs_in']} | {fmt(_get(v, 'first_draw_s'))} | "
                         f"{fmt(_get(v, 'first_streamed_draw_s'))} | "
                         f"{fmt(_get(v, 'compile_time_attr_s'))} | {fmt(_get(v, 'import_s'))} | "
                         f"{e.get('same_module_file', '-')} | {stats or v.get('error', '-')} | "
                         f"{base_misses} |")
        lines.append("")
    c = res.get("c")
    if c:
        lines += ["## c. Compile time against model size", "",
                  "`rv_chain:n`: n scalar random variables x_k ~ Normal(x_{k-1}, 1). "
                  "`det_chain:n`: one variable and n scalar deterministics "
                  "d_k = tanh(d_{k-1}) * 0.9 + w.  Operation nodes: lowered nodes other than "
                  "inputs and data.  compile_model s includes lowering, source emission and "
                  "Numba; lower and emit are also timed alone.", "",
                  "| model | operation nodes | all nodes | dim | compile_model s | lower s | "
                  "emit source s | first gradient s | sample 1+1 after s | build s | "
                  "source lines | compiler code |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in c:
            if "error" in r:
                why = r["error"].strip().splitlines()[-1] if r["error"].strip() else "failed"
                lines.append(f"| {r['model']} | - | - | - | {why} | | | | | | | |")
                continue
            lines.append("| " + " | ".join([r["model"], str(r["operation_nodes"]), str(r["nodes"]),
                                            str(r["dim"]), fmt(r["compile_model_s"]),
                                            fmt(r["lower_s"]), fmt(r["emit_source_s"]),
                                            fmt(r["first_gradient_s"]),
                                            fmt(r.get("sample_1_1_after_compile_s")),
                                            fmt(r["build_s"]), str(r["source_lines"]),
                                            r.get("code", "-")]) + " |")
        for r in c:
            if "error" in r:
                lines += ["", f"{r['model']} failed:", "```", r["error"], "```"]
        lines.append("")
    codes = sorted({row["code"] for part in ("a", "b") for row in _rows(res.get(part))
                    if isinstance(row, dict) and "code" in row})
    if codes:
        lines += [f"Compiler code versions seen by the part a and b processes: {', '.join(codes)}"
                  + (" (the compiler sources changed during the run)." if len(codes) > 1 else "."),
                  ""]
    return "\n".join(lines)


def _rows(part):
    """Every child row of a part's results."""
    if not part:
        return []
    if isinstance(part, list):  # part b
        return [e[k] for e in part for k in ("base_run", "variant_run")]
    return [row for table in part.values() for row in table.values()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--models", default=",".join(RACE))
    parser.add_argument("--no-nutpie", action="store_true")
    parser.add_argument("--sizes", default="10,40,160,1000")
    parser.add_argument("--big", type=int, default=10000, help="scalar RVs of the big model (0: skip)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per child process")
    parser.add_argument("--size-timeout", type=int, default=180,
                        help="seconds per part-c model (a model past it is reported as timed out)")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    models = args.models.split(",")
    nutpie = not args.no_nutpie
    if nutpie:
        try:
            import nutpie as _n  # noqa: F401
            import pymc  # noqa: F401
        except ImportError:
            log("nutpie / pymc not installed (pip install -e '.[bench]'): nutpie skipped")
            nutpie = False
    import numba
    import exmc
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.machine(), "cores": os.cpu_count(), "exmc": exmc.__version__,
            "numba": numba.__version__, "models": models,
            "command": "python benchmarks/compile_time.py "
                       + " ".join(argv if argv is not None else sys.argv[1:])}
    meta.update(code_state())
    if nutpie:
        import nutpie as _n
        meta["nutpie"] = getattr(_n, "__version__", "?")
    start = time.perf_counter()
    warm_caches(nutpie and "a" in parts)
    res = {}
    if "a" in parts:
        res["a"] = part_a(models, nutpie, args.timeout)
    if "b" in parts:
        res["b"] = part_b(args.timeout)
    if "c" in parts:
        res["c"] = part_c([int(s) for s in args.sizes.split(",")], args.big, args.size_timeout)
    meta["total_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_time.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    text = markdown(res, meta) + f"\nWhole run: {meta['total_s']:.0f} s.\n"
    (out / "compile_time.md").write_text(text)
    print()
    print(text)
    return res


if __name__ == "__main__":
    main()
