"""Command-line options shared by the examples (the test suite runs each with tiny counts)."""
import argparse


def parse(description, draws=1000, warmup=1000, chains=4):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--draws", type=int, default=draws, help="draws kept per chain")
    parser.add_argument("--warmup", type=int, default=warmup, help="warmup iterations per chain")
    parser.add_argument("--chains", type=int, default=chains)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args()
