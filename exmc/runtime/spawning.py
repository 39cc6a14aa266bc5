"""Worker processes that never import the user's script: no ``__main__`` guard needed.

``multiprocessing``'s spawn method starts each child by re-running the parent's main
script (as ``__mp_main__``), so that objects defined there can be unpickled.  exmc's
chain workers need nothing from it: their target and arguments are exmc's own
(``exmc.runtime.worker.run_worker``, a model file path, seeds, plain options).  Re-running
the script costs each worker whatever the script imports (ArviZ alone is about 1 s) and,
in a script without an ``if __name__ == "__main__":`` guard, runs its ``exmc.sample`` call
again inside every worker, which then fails at start-up with pages of tracebacks.

``install`` wraps ``multiprocessing.spawn.get_preparation_data`` (what the parent sends a
spawned child before it starts) so that for exmc's chain workers, and only for them
(recognised by their process names: ``chainN/chain-N``, given by ``ChainGroup``, and
``exmc-pool/worker-N``, the warm workers of ``exmc.runtime.pool``), the main
module is left out; every other process, the user's own included, is spawned as before.

``refuse_in_bootstrap`` is the other half: a process that is itself being started by
``multiprocessing`` (a child of the user's own pool re-running an unguarded script) cannot
start workers; it raises one clear error naming the guard instead.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import re
import sys
import threading

WORKER_NAME = re.compile(r"chain\d+/chain-\d+|exmc-pool/worker-\d+")
MAIN_KEYS = ("init_main_from_path", "init_main_from_name")

_lock = threading.Lock()
_original = None

GUARD_MESSAGE = (
    "exmc.sample(cores=...) was called while this process was being started by "
    "multiprocessing, which re-runs the main script in every child process.  Put the "
    "sampling code of the script under the guard:\n\n"
    "    if __name__ == \"__main__\":\n"
    "        idata = exmc.sample(model, ...)\n")


def _preparation_data(name):
    data = _original(name)
    if isinstance(name, str) and WORKER_NAME.fullmatch(name):
        for key in MAIN_KEYS:
            data.pop(key, None)
    return data


def install():
    """Leave the main script out of exmc's chain workers (idempotent, thread-safe)."""
    global _original
    with _lock:
        if _original is None:
            _original = multiprocessing.spawn.get_preparation_data
            multiprocessing.spawn.get_preparation_data = _preparation_data


def in_bootstrap():
    """True while this process is a multiprocessing child still importing its parent's script."""
    main = sys.modules.get("__main__")
    return (getattr(multiprocessing.current_process(), "_inheriting", False)
            or getattr(main, "__name__", "__main__") == "__mp_main__")


def refuse_in_bootstrap():
    """Raise ``RuntimeError`` naming the ``__main__`` guard when workers cannot be started here."""
    if in_bootstrap():
        raise RuntimeError(GUARD_MESSAGE)
