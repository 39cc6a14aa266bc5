"""Chain throughput of exmc.distributed.sample_chains with 1, 2 and 3 local exmc-node daemons.

    python benchmarks/distributed_throughput.py                 # sv model, 6 chains, 3 rounds
    python benchmarks/distributed_throughput.py --model logistic --chains 12

Each node runs one chain at a time (--workers 1), so N nodes run N chains at once; the
nodes are started once and warmed up (each compiles, or loads the model from the compile
cache) before timing.  The rounds interleave the node counts, so drift in the machine's
speed hits them alike.  Reports the median wall time of a run (chains sent, every draw
back), chains per second and the speed-up over one node.  On a machine with C cores the
speed-up cannot pass about min(N, C).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.models import MODELS
from exmc.distributed import sample_chains
from exmc.distributed.coordinator import LocalNode


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sv", choices=sorted(MODELS))
    parser.add_argument("--chains", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    args = parser.parse_args()
    model = MODELS[args.model]()
    run = {"num_samples": args.num_samples, "num_warmup": args.num_warmup, "progressbar": False}
    nodes = [LocalNode(workers=1) for _ in range(3)]
    try:
        addresses = [node.address for node in nodes]
        sample_chains(model, nodes=addresses, chains=3, seed=0, **run)  # every node compiles
        times = {n: [] for n in (1, 2, 3)}
        for round_ in range(args.rounds):
            for n in times:
                start = time.perf_counter()
                idata = sample_chains(model, nodes=addresses[:n], chains=args.chains,
                                      seed=round_, **run)
                times[n].append(time.perf_counter() - start)
                assert idata.posterior.sizes["chain"] == args.chains
    finally:
        for node in nodes:
            node.stop()
    print(f"{args.model}: {args.chains} chains of {args.num_warmup} + {args.num_samples} "
          f"iterations, {os.cpu_count()} CPU(s), median of {args.rounds} rounds")
    base = statistics.median(times[1])
    for n, runs in times.items():
        wall = statistics.median(runs)
        print(f"  {n} node(s): {wall:6.2f} s  {args.chains / wall:5.2f} chains/s  "
              f"speed-up {base / wall:4.2f}x")


if __name__ == "__main__":
    main()
