"""Distribution is addressing: run chains on ``exmc-node`` daemons by giving their addresses.

    idata = exmc.sample(model, chains=8, seed=1, stream_to="tcp://127.0.0.1:5556",
                        executor=exmc.distributed.Nodes(["tcp://10.0.0.2:5555", "local"]))

(``exmc.distributed.sample_chains(model, nodes=[...], ...)`` says the same.)

Modules: `coordinator` (``Nodes``, ``sample_chains``), `node` (the daemon), `wire` (the
coordinator <-> node protocol), `keys` (CURVE key files), `cli` (``exmc-node``),
`on_dask` (``dask_nodes``: nodes on a Dask cluster; imported when first used).
"""
from exmc.distributed.coordinator import NodeError, Nodes, sample_chains
from exmc.distributed.keys import keygen

__all__ = ["NodeError", "Nodes", "dask_nodes", "keygen", "sample_chains"]


def __getattr__(name):
    if name == "dask_nodes":  # Dask is an optional extra, and slow to import
        from exmc.distributed.on_dask import dask_nodes
        return dask_nodes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
