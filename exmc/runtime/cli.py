"""The ``exmc`` command line: ``exmc watch ADDRESS`` follows a streaming run from another terminal."""
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
    top = argparse.ArgumentParser(prog="exmc", description=__doc__.split(":")[0] + ".")
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
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "watch":
        from exmc.runtime.watch import watch
        return watch(args.address, run=args.run, timeout=args.timeout, refresh=args.refresh,
                     expected_chains=args.chains)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
