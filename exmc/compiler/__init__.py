"""Compile a model: lower, emit a module file into the on-disk cache, import it, return callables.

The generated file is named by the hash of the model's structure (data values
excluded), so a second process, or a second model differing only in data,
imports the file and loads Numba's cached machine code instead of compiling.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import hashlib

from exmc.compiler.emit import EMITTER_VERSION, module_source
from exmc.compiler.lower import lower_model
from exmc.compiler.pointmap import PointMap
from exmc.ir.builder import Model
from exmc.ir.serialize import structure_hash

_loaded: dict = {}  # module name -> module, for this process
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def cache_dir() -> Path:
    """Where generated model modules live: $EXMC_CACHE_DIR or ~/.cache/exmc."""
    root = os.environ.get("EXMC_CACHE_DIR") or os.path.join(Path.home(), ".cache", "exmc")
    path = Path(root) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


class CompiledModel:
    """A model's compiled log-density and gradient, its data, and its point map.

    Attributes
    ----------
    address : int
        Address of the C entry point ``status = f(x*, data*, grad*, logp*)``.
    data : ndarray
        The flat data argument (all data arrays concatenated).
    pointmap : PointMap
    """

    def __init__(self, model: Model, module, program):
        self.model = model
        self.module = module
        # The data, then the work buffer of an evaluation (module.SCRATCH values): the
        # sampler passes this one array, so an evaluation allocates nothing.  One
        # evaluation at a time per CompiledModel (chains in a process run in turn).
        self.data = np.concatenate([program.data, np.zeros(module.SCRATCH)])
        self.pointmap = PointMap(program.free, program.outputs, program.transforms, model)
        self.observed = [slot for slot, _ in program.observed]
        self.address = module.logp_grad_c.address
        self.dim = self.pointmap.dim

    def logp_and_grad(self, x):
        """(log density, gradient, status) at unconstrained point ``x``.

        Calls the same C entry point as the sampler (through ctypes), so no second
        specialisation is compiled for calls from Python.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"expected a point of shape ({self.dim},), got {x.shape}")
        grad, logp = np.zeros(self.dim), np.zeros(1)
        pointers = (a.ctypes.data_as(_DOUBLE_P) for a in (x, self.data, grad, logp))
        status = self.module.logp_grad_c.ctypes(*pointers)
        return float(logp[0]), grad, int(status)

    def constrain(self, draws):
        """Dict name -> constrained values for unconstrained ``draws`` of shape (n, dim)."""
        draws = np.ascontiguousarray(np.atleast_2d(draws), dtype=np.float64)
        out = np.empty((draws.shape[0], self.pointmap.output_size))
        self.module.constrain_draws(draws, self.data, out)
        return self.pointmap.unflatten(out)

    def log_likelihood(self, draws):
        """Dict observed name -> pointwise log-likelihood, shape (n, *data shape), at ``draws``."""
        draws = np.ascontiguousarray(np.atleast_2d(draws), dtype=np.float64)
        out = np.empty((draws.shape[0], sum(s.size for s in self.observed)))
        self.module.log_likelihood_draws(draws, self.data, out)
        return {s.name: out[:, s.offset:s.offset + s.size].reshape((-1,) + s.shape)
                for s in self.observed}


def _code_version():
    """A digest of the sources that write the generated code and that it calls.

    Numba's cache of a generated function does not notice a change in a function
    it calls, so an edit of the emitter or a kernel must give the model file a new name.
    So must an edit of what writes a model's graph without changing its structure hash:
    the transforms' expressions and the families' ``expand`` (``exmc/ir/dists``).
    """
    if "version" not in _loaded:
        here = Path(__file__).parent
        dists = sorted(str(p.relative_to(here.parent)) for p in (here.parent / "ir" / "dists").glob("*.py"))
        sources = b"".join((here / f).read_bytes() for f in (
            "families.py", "scalar.py", "njit.py", "emit.py", "lower.py", "transforms.py", "../ir/ops.py",
            *(f"../{d}" for d in dists)))
        _loaded["version"] = f"v{EMITTER_VERSION}{hashlib.sha256(sources).hexdigest()[:8]}"
    return _loaded["version"]


class CudaModel:
    """The same model body compiled as a ``numba.cuda`` device function.

    ``logp_and_grad(points)`` evaluates many points at once, one GPU thread per
    point, each with its own work buffer in thread-local memory.

    Attributes
    ----------
    module : the generated module (``logp_grad`` device function, ``logp_grad_many`` kernel)
    data : ndarray, the same flat data argument as the CPU model's
    """

    def __init__(self, model: Model, module, program):
        self.model, self.module, self.data = model, module, program.data
        self.pointmap = PointMap(program.free, program.outputs, program.transforms, model)
        self.dim = self.pointmap.dim

    def logp_and_grad(self, points, threads_per_block=64):
        """(log densities (n,), gradients (n, dim), statuses (n,)) at unconstrained ``points`` (n, dim)."""
        points = np.ascontiguousarray(np.atleast_2d(points), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (n, {self.dim}), got {points.shape}")
        n = points.shape[0]
        grads, logps, statuses = np.zeros_like(points), np.zeros(n), np.zeros(n, dtype=np.int64)
        blocks = max(1, -(-n // threads_per_block))
        data = self.data if self.data.size else np.zeros(1)
        self.module.logp_grad_many[blocks, threads_per_block](points, data, grads, logps, statuses)
        return logps, grads, statuses


def require_cuda(option="target='cuda'"):
    """numba.cuda, or a clear error naming ``option`` when neither a GPU nor the simulator is there."""
    try:
        from numba import cuda
    except ImportError as err:  # pragma: no cover - numba without its CUDA target
        raise RuntimeError(f"{option} needs numba's CUDA support: pip install 'exmc[cuda]' "
                           f"({err})") from None
    if not cuda.is_available():
        raise RuntimeError(f"{option}: no CUDA GPU found (numba.cuda.is_available() is "
                           "False); for testing without a GPU set NUMBA_ENABLE_CUDASIM=1 before "
                           "importing numba, to run on Numba's CUDA simulator (slow)")
    return cuda


def _load(name, program, digest, target):
    module = _loaded.get(name)
    if module is not None:
        return module
    path = cache_dir() / f"{name}.py"
    if not path.exists():
        source = module_source(program, digest, target)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)  # atomic: concurrent workers never see half a file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[name] = module
    return module


def compile_model(model: Model, target: str = "cpu"):
    """Validate, lower and compile ``model`` (or load it from the cache).

    ``target="cpu"`` (the default) gives a ``CompiledModel`` behind a C entry point
    for the sampler; ``target="cuda"`` gives a ``CudaModel``, the same body as a
    ``numba.cuda`` device function (needs ``exmc[cuda]`` and a GPU, or Numba's
    simulator with ``NUMBA_ENABLE_CUDASIM=1``).
    """
    if target not in ("cpu", "cuda"):
        raise ValueError(f"target must be 'cpu' or 'cuda', got {target!r}")
    if target == "cuda":
        require_cuda()
    model.validate()
    program = lower_model(model)
    digest = structure_hash(model)
    name = f"exmc_model_{_code_version()}_{digest[:24]}" + ("_cuda" if target == "cuda" else "")
    module = _load(name, program, digest, target)
    if target == "cuda":
        return CudaModel(model, module, program)
    return CompiledModel(model, module, program)
