"""Say what a silent wait is: compiling the sampler (first run on a machine) or a new model."""
from __future__ import annotations

import sys
import threading
import time

# Measured (benchmarks/sampler_compile.py, docs/runtime.md): 14.0 s of CPU for the sampler
# and 18.7 s for a whole first run with empty caches on a 2-core VM; wall time is about
# that on an idle machine (the compile uses one core) and longer on a busy one.
SAMPLER_FIRST_COMPILE = "about 15 s, longer on a busy machine"
MODEL_NOTICE_AFTER = 1.0  # seconds of model compilation before it is worth a line


def sampler_is_cached():
    """True when Numba's on-disk cache holds the compiled sampler loop for this source.

    Reads Numba's cache index (what ``cache=True`` would load); any doubt reads as cached,
    so the worst case is a missing notice, never a wrong one on every run.
    """
    from exmc.samplers.nuts import run_block

    try:
        if run_block.signatures:  # already compiled or loaded in this process
            return True
        return bool(run_block._cache._cache_file._load_index())
    except Exception:  # Numba internals moved: say nothing rather than something wrong
        return True


class CompileNotice:
    """Context manager around compiling a model and loading the sampler for it.

    On the first run on a machine (no cached sampler) it says so at once, with the usual
    duration; otherwise, if compiling the model takes longer than ``after`` seconds, it says
    that a new model is being compiled.  When it said anything, it also says how long it took.
    """

    def __init__(self, enabled=True, stream=None, after=MODEL_NOTICE_AFTER):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.after = after
        self.spoke = False
        self.lock = threading.Lock()
        self.timer = None

    def say(self, text):
        with self.lock:
            self.stream.write(f"exmc: {text}\n")
            self.stream.flush()
            self.spoke = True

    def __enter__(self):
        self.start = time.perf_counter()
        if not self.enabled:
            return self
        if not sampler_is_cached():
            self.say(f"compiling the sampler for this machine (first run only, usually "
                     f"{SAMPLER_FIRST_COMPILE}; later runs load it from the cache)...")
        else:
            self.timer = threading.Timer(self.after, self.say, args=(
                "compiling this model (new model or changed structure: a few seconds; "
                "cached for later runs)...",))
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()  # a notice already on its way is written before the summary
        if self.spoke and exc[0] is None:
            self.say(f"compiled in {time.perf_counter() - self.start:.1f} s")
        return False
