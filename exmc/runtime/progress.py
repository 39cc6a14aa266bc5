"""Progress display while sampling: draws, divergences and step size per chain (rich)."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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

    def __init__(self):
        self.progress = Progress(
            TextColumn("chain {task.fields[chain]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[phase]}"),
            TextColumn("divergences {task.fields[divergences]}"),
            TextColumn("step size {task.fields[step_size]:.3g}"), TimeElapsedColumn())

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
