"""A run kept on disk as it goes: every chain's draws and resumable state, for resume and extension.

``exmc.sample(model, ..., checkpoint="runs/eight_schools")`` writes this folder:

    run.json            the run: format, model hash, chains, num_warmup, num_samples, seed
                        (the SeedSequence entropy, as text), target_accept, max_tree_depth,
                        dense_mass, adaptation, save_warmup, init, dim, stat names
    model.msgpack       the model, as ``exmc.Model.from_msgpack`` reads it
    chain-<c>.rows      the chain's iterations so far, warmup included: float64 rows of the
                        ``dim`` unconstrained coordinates then the ``len(STAT_NAMES)`` stats
                        (``exmc.samplers.nuts.STAT_NAMES``), little-endian, row after row
    chain-<c>.state     msgpack {"done": int, "state": ``pack_state``}: the chain after
                        ``done`` iterations (position, step size, metric, adaptation
                        accumulators, random generator)
    trace.nc            when the run has ended: the InferenceData ``sample`` returned, in
                        netCDF (``arviz.from_netcdf``)

Crash safety: a block's rows are written at their place in ``chain-<c>.rows`` and flushed
to disk (fsync) before ``chain-<c>.state`` is replaced (written beside, fsynced, then
``os.replace``).  The state is therefore never ahead of the rows; rows past the state's
``done`` (a block whose state was never written) are ignored and overwritten on resume.
Killing the process at any point leaves a folder that resumes to exactly the draws of the
run that was never interrupted: a resumed chain starts from the saved state, random
generator included, and block boundaries do not change the draws.

``read(path)`` gives the draws so far as InferenceData, while the run is going too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import msgpack
import numpy as np

from exmc.samplers.nuts import STAT_NAMES

FORMAT = "exmc-checkpoint-2"  # 2: named chain-state scalars
SETTINGS = ("chains", "num_warmup", "num_samples", "seed", "target_accept", "max_tree_depth",
            "dense_mass", "adaptation", "save_warmup")


def _write_atomic(path, data):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _plain(value):
    """``init`` values as JSON: nested lists of floats (Python's float repr round-trips exactly)."""
    return np.asarray(value, dtype=float).tolist()


class RunFolder:
    """One checkpointed run: its settings, and per chain the rows and the state so far."""

    def __init__(self, path):
        self.path = Path(path)

    # -- the run ------------------------------------------------------------------------------

    @property
    def exists(self):
        return (self.path / "run.json").exists()

    def settings(self):
        return json.loads((self.path / "run.json").read_text())

    def model(self):
        from exmc.ir.builder import Model

        return Model.from_msgpack((self.path / "model.msgpack").read_bytes())

    def create(self, model, settings, init, dim):
        """Start a new run folder (refuses a folder that holds other files)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if any(self.path.iterdir()):
            raise ValueError(f"checkpoint folder {str(self.path)!r} is not empty and holds no "
                             f"exmc run (no run.json); give a new or empty folder")
        _write_atomic(self.path / "model.msgpack", model.to_msgpack())
        record = {"format": FORMAT, **settings, "dim": int(dim), "stats": list(STAT_NAMES),
                  "init": None if init is None else {k: _plain(v) for k, v in init.items()}}
        _write_atomic(self.path / "run.json", json.dumps(record, indent=1).encode())

    def check(self, model, settings):
        """Raise ``ValueError`` naming what differs between this folder's run and the call
        continuing it; a larger ``num_samples`` extends the run (recorded)."""
        saved = self.settings()
        if saved.get("format") != FORMAT:
            raise ValueError(f"{self.path}: not an {FORMAT} folder (format "
                             f"{saved.get('format')!r})")
        if (self.path / "model.msgpack").read_bytes() != model.to_msgpack():
            raise ValueError(f"checkpoint {str(self.path)!r} holds a run of another model "
                             f"(or other data); give a new folder for this one")
        differ = [f"{k}={settings[k]!r} (the run has {saved[k]!r})" for k in SETTINGS
                  if k not in ("num_samples", "save_warmup") and settings[k] != saved[k]]
        if differ:
            raise ValueError(f"checkpoint {str(self.path)!r} was started with other settings: "
                             + ", ".join(differ) + "; resume with the run's own settings "
                             "(exmc.resume(path)) or give a new folder")
        if settings["num_samples"] < saved["num_samples"]:
            raise ValueError(f"num_samples={settings['num_samples']} is fewer than the run's "
                             f"{saved['num_samples']}; a run can be extended, not shortened")
        if settings["num_samples"] != saved["num_samples"] or \
                settings["save_warmup"] != saved["save_warmup"]:
            saved.update(num_samples=settings["num_samples"], save_warmup=settings["save_warmup"])
            _write_atomic(self.path / "run.json", json.dumps(saved, indent=1).encode())

    def init(self):
        saved = self.settings()["init"]
        return None if saved is None else {k: np.asarray(v, dtype=float) for k, v in saved.items()}

    # -- chains -------------------------------------------------------------------------------

    def _rows(self, chain):
        return self.path / f"chain-{chain}.rows"

    def _state(self, chain):
        return self.path / f"chain-{chain}.state"

    def load_chain(self, chain, dim):
        """(done, packed state or None, rows (done, dim + len(STAT_NAMES))) saved for ``chain``."""
        try:
            saved = msgpack.unpackb(self._state(chain).read_bytes(), raw=False)
        except FileNotFoundError:
            return 0, None, np.zeros((0, dim + len(STAT_NAMES)))
        done = int(saved["done"])
        width = dim + len(STAT_NAMES)
        raw = np.fromfile(self._rows(chain), dtype="<f8", count=done * width)
        if raw.size != done * width:
            raise ValueError(f"{self._rows(chain)} holds fewer rows than its state's {done}: "
                             f"the checkpoint is damaged")
        return done, saved["state"], raw.reshape(done, width)

    def save_block(self, chain, first, draws, stats, packed_state):
        """Rows ``first ..`` of ``chain``, then (once they are on disk) its state after them."""
        rows = np.ascontiguousarray(np.hstack([draws, stats]), dtype="<f8")
        fd = os.open(self._rows(chain), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, rows.tobytes(), first * rows.shape[1] * 8)
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_atomic(self._state(chain), msgpack.packb(
            {"done": first + len(rows), "state": packed_state}, use_bin_type=True))

    def save_trace(self, idata):
        """The finished run's InferenceData as ``trace.nc`` (replaced atomically)."""
        tmp = self.path / "trace.nc.tmp"
        idata.to_netcdf(str(tmp))
        os.replace(tmp, self.path / "trace.nc")


def read(path):
    """The draws of a checkpointed run so far, as InferenceData (every chain cut to the
    shortest; None before every chain has a post-warmup draw).  Safe while the run goes on."""
    from exmc.compiler import compile_model
    from exmc.runtime.chain import ChainResult
    from exmc.runtime.sample import to_inference_data

    folder = RunFolder(path)
    settings = folder.settings()
    compiled = compile_model(folder.model())
    dim, warmup = settings["dim"], settings["num_warmup"]
    results = []
    for chain in range(settings["chains"]):
        done, _, rows = folder.load_chain(chain, dim)
        if done <= warmup:
            return None
        results.append(ChainResult(rows[:, :dim], rows[:, dim:], done, None))
    n = min(min(r.done for r in results) - warmup, settings["num_samples"])
    return to_inference_data(compiled, results, warmup, n, settings["save_warmup"],
                             {"checkpoint": str(folder.path), "partial": int(
                                 n < settings["num_samples"])})


def resume(path, num_samples=None, **options):
    """Continue the run kept in ``path`` (``exmc.sample(..., checkpoint=path)``) and return it.

    Every chain continues from its saved state, so the result is bit for bit the run that
    was never interrupted.  ``num_samples`` larger than the run's extends it (a finished run
    too): the added draws are those a run asked for that many from the start would have.
    Other keyword arguments are ``exmc.sample``'s that do not change the draws
    (``progressbar``, ``cores``, ``stream_to``, ``diagnostics``, ...).
    """
    from exmc.runtime.sample import sample

    folder = RunFolder(path)
    if not folder.exists:
        raise FileNotFoundError(f"no exmc run in {str(path)!r} (no run.json); start one with "
                                f"exmc.sample(model, ..., checkpoint={str(path)!r})")
    saved = folder.settings()
    clash = sorted(set(options) & (set(SETTINGS) | {"init"}))
    if clash:
        raise TypeError(f"resume takes the run's own {', '.join(clash)} from {str(path)!r}; "
                        f"only num_samples can change (to extend the run)")
    settings = {k: saved[k] for k in SETTINGS}
    settings["seed"] = int(saved["seed"])
    if num_samples is not None:
        settings["num_samples"] = num_samples
    return sample(folder.model(), checkpoint=path, init=folder.init(), **settings, **options)
