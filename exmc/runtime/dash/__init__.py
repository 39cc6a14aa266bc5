"""Live browser dashboard of a streaming run: ``exmc dash ADDRESS`` and ``exmc.sample(..., dashboard=True)``.

One page per run, updated live from the draw stream (docs/dashboard.md): per variable a
trace plot of every chain (recent window, decimated on the server, divergences marked) and
a histogram, for vectors a chosen element and a mean +- sd strip of the rest; per chain the
draws, phase, divergences, step size and tree depth; running mean, sd, split R-hat and bulk
ESS per scalar (the terminal watcher's state, ``exmc.runtime.watch.WatchState``); banners for
missed messages and for the run's end.  Plots are drawn with uPlot, vendored from npm in
``static/`` (see static/VENDORED.md): the page loads nothing from the internet.

Modules: ``state`` (the folded state and the page's JSON, no I/O), ``server`` (HTTP, token,
ZeroMQ subscriber), ``chromium`` (a headless Chromium driver for the tests and benchmark).
"""
from __future__ import annotations

import sys

from exmc.runtime.dash.server import Dashboard

__all__ = ["Dashboard", "attach"]


def attach(dashboard, stream_to=None, chains=None, run_id=None):
    """For ``sample(..., dashboard=...)``: the Dashboard, and the stream target to publish to.

    ``dashboard`` is True (a new dashboard on a free loopback port), a port number, or a
    ``Dashboard``.  With no ``stream_to`` the run feeds the dashboard in-process; with a
    callable, both get every message; with a ZeroMQ address, the dashboard subscribes to it
    (which needs a fixed port: ``tcp://127.0.0.1:5556``, not ``:*``).  Prints the URL.
    """
    if isinstance(dashboard, Dashboard):
        board = dashboard
    elif dashboard is True:
        board = Dashboard(run=run_id)
    elif isinstance(dashboard, int) and not isinstance(dashboard, bool):
        board = Dashboard(port=dashboard, run=run_id)
    else:
        raise TypeError(f"dashboard must be True, a port number or a Dashboard, got {dashboard!r}")
    if chains is not None:
        board.state.expected_chains = chains
    if stream_to is None:
        target = board.feed
    elif callable(stream_to):
        def target(message, first=stream_to, second=board.feed):
            first(message)
            second(message)
    elif isinstance(stream_to, str):
        board.subscribe(_connectable(stream_to))
        target = stream_to
    else:
        raise TypeError(f"stream_to must be a ZeroMQ address or a callable, got "
                        f"{type(stream_to).__name__}")
    print(f"exmc dashboard: {board.url}", file=sys.stderr, flush=True)
    return board, target


def _connectable(address: str) -> str:
    """The address a local subscriber connects to for a publisher bound at ``address``."""
    scheme, _, rest = address.partition("://")
    if scheme != "tcp":
        return address
    host, _, port = rest.rpartition(":")
    if port == "*" or not port.isdigit():
        raise ValueError(f"dashboard=True with stream_to={address!r}: give the stream a fixed "
                         f"port (e.g. tcp://127.0.0.1:5556) so the dashboard can connect to it")
    if host in ("*", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"tcp://{host}:{port}"
