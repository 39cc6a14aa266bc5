"""The ``exmc`` command line: ``exmc watch ADDRESS`` follows a streaming run from another terminal, ``exmc dash ADDRESS`` in a browser."""
from __future__ import annotations

import argparse
import sys


def positive(kind):
    """argparse type: a number of ``kind`` that must be positive."""
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _run_name(text):
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"run names are identifiers, got {text!r}")
    return text


def parser() -> argparse.ArgumentParser:
    from exmc import __version__

    top = argparse.ArgumentParser(
        prog="exmc", description="Follow a streaming exmc run: in this terminal (watch) or "
                                 "in a browser (dash).")
    top.add_argument("--version", action="version", version=f"exmc {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    watch = commands.add_parser(
        "watch", help="show the chains and running diagnostics of a streaming run",
        description="Subscribe to a run published by exmc.sample_stream and show its chains "
                    "(draws, divergences, step size, missed messages) and its variables "
                    "(mean, sd, split R-hat, bulk ESS over post-warmup draws). Exits 0 when "
                    "every chain is done, 1 if one failed, 3 after --timeout seconds without "
                    "a message, 130 on Ctrl-C.")
    watch.add_argument("address", help="publisher address to connect to, e.g. tcp://127.0.0.1:5556")
    watch.add_argument("--run", type=_run_name, help="only this run (default: every run on the address)")
    watch.add_argument("--timeout", type=positive(float), metavar="SECONDS",
                       help="stop after this long without a message (default: wait until done)")
    watch.add_argument("--refresh", type=positive(float), default=4.0, metavar="HZ",
                       help="redraws per second (default 4)")
    watch.add_argument("--chains", type=positive(int), metavar="N",
                       help="exit once N chains per run are done (default: once every chain "
                            "seen is done and a second has passed without a message)")
    dash = commands.add_parser(
        "dash", help="serve a live browser dashboard of a streaming run",
        description="Subscribe to a run published by exmc.sample_stream (or a cores= run, or "
                    "exmc.distributed.sample_chains's stream_to) and serve one read-only page "
                    "that updates live: trace plots and histograms per variable, per-chain "
                    "progress and divergences, running mean, sd, R-hat and ESS. Prints the "
                    "page's URL; serves until Ctrl-C (or --exit-after).")
    dash.add_argument("address", help="publisher address to connect to, e.g. tcp://127.0.0.1:5556")
    dash.add_argument("--port", type=int, default=8765,
                      help="HTTP port (default 8765; 0 picks a free one)")
    dash.add_argument("--host", default="127.0.0.1",
                      help="address to serve on (default 127.0.0.1; any other address requires "
                           "the token printed in the URL)")
    dash.add_argument("--token", help="token the URL must carry (default: none on loopback, "
                                      "a random one elsewhere)")
    dash.add_argument("--run", type=_run_name, help="only this run (default: every run on the address)")
    dash.add_argument("--chains", type=positive(int), metavar="N",
                      help="the run has ended once N chains are done (default: once every chain "
                           "seen is done and a second has passed without a message)")
    dash.add_argument("--refresh", type=positive(float), default=2.0, metavar="HZ",
                      help="page updates per second (default 2)")
    dash.add_argument("--window", type=positive(int), default=1000, metavar="DRAWS",
                      help="recent draws per chain kept for the plots (default 1000)")
    dash.add_argument("--quiet", type=positive(float), default=5.0, metavar="SECONDS",
                      help="say the stream is silent (or that nothing publishes at the address) "
                           "after this long without a message (default 5)")
    dash.add_argument("--exit-after", type=positive(float), metavar="SECONDS",
                      help="stop serving this long after the run ended (default: serve until Ctrl-C)")
    return top


def _dash(args) -> int:
    import time

    import arviz  # noqa: F401  -- R-hat and ESS need it; seconds to import, so before any draw

    from exmc.runtime.dash import Dashboard

    if args.window < 2:
        raise SystemExit("exmc dash: --window must be at least 2")
    try:
        board = Dashboard(args.address, host=args.host, port=args.port, token=args.token,
                          run=args.run, refresh=args.refresh, expected_chains=args.chains,
                          trace_window=args.window, quiet=args.quiet)
    except OSError as err:
        print(f"exmc dash: cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"exmc dash: {err}", file=sys.stderr)
        return 2
    print(f"exmc dash: {board.url}  (following {args.address}; Ctrl-C to stop)", flush=True)
    ended_at = []

    def until():
        if args.exit_after is None:
            return False
        with board.lock:
            ended = board.state.ended()
        if ended and not ended_at:
            ended_at.append(time.monotonic())
        return bool(ended_at) and time.monotonic() - ended_at[0] >= args.exit_after

    board.serve(until)
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "watch":
        from exmc.runtime.watch import watch
        return watch(args.address, run=args.run, timeout=args.timeout, refresh=args.refresh,
                     expected_chains=args.chains)
    if args.command == "dash":
        return _dash(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
