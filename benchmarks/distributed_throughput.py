"""Chain throughput of exmc.distributed.sample_chains with 1, 2 and 3 local exmc-node daemons.

    python benchmarks/distributed_throughput.py                 # sv model, 6 chains, 3 rounds
    python benchmarks/distributed_throughput.py --model logistic --chains 12
    python benchmarks/distributed_throughput.py --dask          # and nodes launched by Dask

With ``--dask``, beside the hand-started nodes: three Dask LocalClusters of 1, 2 and
3 one-thread worker processes, each with its nodes from
``exmc.distributed.dask_nodes(client, per_host=False, workers_per_node=1)`` (one node
per worker, one chain at a time, as the hand-started ones), passed to
``sample_chains`` as a live node set.  Their start-up (cluster up, then nodes up) is
reported apart.

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


class DaskNodesUp:
    """A LocalCluster of ``n`` worker processes with one exmc-node each, and its start-up."""

    def __init__(self, n):
        from distributed import Client, LocalCluster

        from exmc.distributed import dask_nodes

        start = time.perf_counter()
        self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address="127.0.0.1:0")
        self.client = Client(self.cluster)
        self.client.wait_for_workers(n, timeout=300)
        self.cluster_up = time.perf_counter() - start
        self.nodes = dask_nodes(self.client, per_host=False, workers_per_node=1, wait=n,
                                timeout=300)
        self.nodes_up = time.perf_counter() - start - self.cluster_up

    def close(self):
        self.nodes.close()
        self.client.close()
        self.cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sv", choices=sorted(MODELS))
    parser.add_argument("--chains", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--dask", action="store_true",
                        help="also nodes launched by Dask on 1, 2 and 3 workers")
    args = parser.parse_args()
    if args.dask:
        import logging
        logging.getLogger("distributed").setLevel(logging.WARNING)
    model = MODELS[args.model]()
    run = {"num_samples": args.num_samples, "num_warmup": args.num_warmup, "progressbar": False}
    nodes = [LocalNode(workers=1) for _ in range(3)]
    clusters = {}
    try:
        addresses = [node.address for node in nodes]
        sample_chains(model, nodes=addresses, chains=3, seed=0, **run)  # every node compiles
        setups = {f"{n} node(s)": addresses[:n] for n in (1, 2, 3)}
        if args.dask:
            for n in (1, 2, 3):
                clusters[n] = DaskNodesUp(n)
                sample_chains(model, nodes=clusters[n].nodes, chains=n, seed=0, **run)
                setups[f"{n} Dask worker(s)"] = clusters[n].nodes
        times = {name: [] for name in setups}
        for round_ in range(args.rounds):
            for name, where in setups.items():
                start = time.perf_counter()
                idata = sample_chains(model, nodes=where, chains=args.chains, seed=round_, **run)
                times[name].append(time.perf_counter() - start)
                assert idata.posterior.sizes["chain"] == args.chains
                assert not idata.attrs["moves"], idata.attrs["moves"]
    finally:
        for cluster in clusters.values():
            cluster.close()
        for node in nodes:
            node.stop()
    print(f"{args.model}: {args.chains} chains of {args.num_warmup} + {args.num_samples} "
          f"iterations, {os.cpu_count()} CPU(s), median of {args.rounds} rounds, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    base = statistics.median(times["1 node(s)"])
    for name, runs in times.items():
        wall = statistics.median(runs)
        print(f"  {name:18s} {wall:6.2f} s  {args.chains / wall:5.2f} chains/s  "
              f"speed-up {base / wall:4.2f}x over 1 hand-started node  "
              f"(runs: {', '.join(f'{t:.2f}' for t in runs)})")
    for n, cluster in clusters.items():
        print(f"  start-up with {n} Dask worker(s): cluster {cluster.cluster_up:.1f} s, "
              f"then nodes {cluster.nodes_up:.1f} s")

if __name__ == "__main__":
    main()
