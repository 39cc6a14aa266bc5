"""Distribution is addressing: run chains on ``exmc-node`` daemons by giving their addresses.

    idata = exmc.distributed.sample_chains(model, nodes=["tcp://10.0.0.2:5555", "local"],
                                           chains=8, seed=1, stream_to="tcp://127.0.0.1:5556")

Modules: `coordinator` (``sample_chains``), `node` (the daemon), `wire` (the
coordinator <-> node protocol), `keys` (CURVE key files), `cli` (``exmc-node``).
"""
from exmc.distributed.coordinator import NodeError, sample_chains
from exmc.distributed.keys import keygen

__all__ = ["NodeError", "keygen", "sample_chains"]
