"""Progress while sampling: a live table in a terminal or notebook, plain lines in a log file.

``make_progress`` picks the display: rich's live table of per-chain bars where output is a
terminal or a Jupyter notebook with ipywidgets (rich renders an updating widget there), and
otherwise (a notebook without ipywidgets too)
(output to a file, CI, ``nohup``, ``| tee``) ``PlainProgress``, one plain line per chain
every few seconds, because a live table written to a file shows nothing until the end.
Chain displays share one interface: ``add_chain(chain, total) -> task`` and
``update(task, done, divergences, step_size, warmup)``, used as a context manager.
``make_fit_progress`` gives an optimisation's display (``exmc.fit``): ``update(done, elbo)``.
"""
from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_INTERVAL = 5.0  # seconds between a chain's plain progress lines


class NoProgress:
    """Stand-in when the display is off."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_chain(self, chain, total):
        return chain

    def update(self, task, done, divergences, step_size, warmup):
        pass


class ChainProgress:
    """One bar per chain: draws done of warmup + samples, divergences, current step size."""

    def __init__(self, console=None):
        self.progress = Progress(
            TextColumn("chain {task.fields[chain]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[phase]}"),
            TextColumn("divergences {task.fields[divergences]}"),
            TextColumn("step size {task.fields[step_size]:.3g}"), TimeElapsedColumn(),
            console=console)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def add_chain(self, chain, total):
        return self.progress.add_task("", total=total, chain=chain, phase="warmup",
                                      divergences=0, step_size=1.0)

    def update(self, task, done, divergences, step_size, warmup):
        self.progress.update(task, completed=done, divergences=divergences, step_size=step_size,
                             phase="warmup" if warmup else "sampling")


class PlainProgress:
    """A plain line per chain at most every ``interval`` seconds, and one when it ends.

    ``chain 2: 1500/2000 draws (sampling), 3 divergences, step size 0.412, 4.1 s``: readable
    in a log file, where a live table cannot be.  Lines are flushed as written.
    """

    def __init__(self, stream=None, interval=PLAIN_INTERVAL):
        self.stream = stream if stream is not None else sys.stdout
        self.interval = float(interval)
        self.tasks = {}

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        return False

    def add_chain(self, chain, total):
        self.tasks[chain] = {"total": total, "last": None, "done": 0}
        return chain

    def update(self, task, done, divergences, step_size, warmup):
        entry = self.tasks[task]
        now = time.perf_counter()
        finished = done >= entry["total"]
        due = entry["last"] is None or now - entry["last"] >= self.interval
        if done == entry["done"] or not (due or finished):
            return
        entry["last"], entry["done"] = now, done
        phase = "warmup" if warmup else "sampling"
        self.stream.write(f"chain {task}: {done}/{entry['total']} draws ({phase}), "
                          f"{divergences} divergences, step size {step_size:.3g}, "
                          f"{now - self.start:.1f} s\n")
        self.stream.flush()


def is_interactive(console=None):
    """True where a live display works: a terminal, or a Jupyter notebook with ipywidgets
    (without it rich's live display shows nothing there and warns at every refresh)."""
    from rich.console import Console

    console = console or Console()
    if console.is_jupyter:
        try:
            import ipywidgets  # noqa: F401  (rich draws its live display into a widget)
        except ImportError:
            return False
        return True
    return bool(console.is_terminal)


def make_progress(enabled, console=None):
    """The display for ``progressbar=enabled``: live where output is interactive, else plain lines."""
    if not enabled:
        return NoProgress()
    if is_interactive(console):
        return ChainProgress(console)
    return PlainProgress(getattr(console, "file", None))


class FitProgress:
    """An optimisation's progress: iterations done of at most ``total`` and the current ELBO.

    A live bar where output is interactive, else a plain line at most every ``interval``
    seconds (``advi: 2000/10000 iterations, ELBO -1234.5, 0.8 s``) and one at the end.
    """

    def __init__(self, total, label, live, stream=None, interval=PLAIN_INTERVAL):
        self.total, self.label, self.live = total, label, live
        self.stream = stream if stream is not None else sys.stdout
        self.interval = float(interval)
        self.progress = self.task = None
        self.last = self.line = None

    def __enter__(self):
        self.start = time.perf_counter()
        if self.live:
            self.progress = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("ELBO {task.fields[elbo]:.6g}"),
                                     TimeElapsedColumn())
            self.progress.__enter__()
            self.task = self.progress.add_task("", total=self.total, elbo=float("nan"))
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            return self.progress.__exit__(*exc)
        if self.line is not None:  # the last state, if not yet written
            self._write(*self.line)
        return False

    def update(self, done, elbo):
        if self.progress is not None:
            self.progress.update(self.task, completed=done, elbo=elbo)
            return
        now = time.perf_counter()
        self.line = (done, elbo, now)
        if self.last is None or now - self.last >= self.interval:
            self._write(done, elbo, now)

    def _write(self, done, elbo, now):
        self.last, self.line = now, None
        self.stream.write(f"{self.label}: {done}/{self.total} iterations, ELBO {elbo:.6g}, "
                          f"{now - self.start:.1f} s\n")
        self.stream.flush()


class _NoFitProgress(NoProgress):
    def update(self, *args):
        pass


def make_fit_progress(enabled, total, label, console=None):
    """The display of an optimisation (``exmc.fit``) for ``progressbar=enabled``."""
    if not enabled:
        return _NoFitProgress()
    return FitProgress(total, label, is_interactive(console), getattr(console, "file", None))
