"""exmc-nodes launched by Dask (``dask_nodes``) on a LocalCluster of worker processes.

The draws of a run over Dask's nodes must be exmc.sample's bit for bit, also when a
worker is closed mid-run (its chains move on from their last draw: nothing lost or
repeated) and when every worker goes and a new one is added mid-run (it receives the
waiting chains).  Loopback only; every wait bounded.
"""
import threading
import time

import pytest

import exmc
from exmc.distributed import NodeError, keygen, sample_chains
from tests.distributed.test_coordinator import LONG, LONG_RUN, RUN, SMALL, assert_same_draws

distributed = pytest.importorskip("distributed")
from exmc.distributed.on_dask import dask_nodes  # noqa: E402  (needs distributed)



@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two one-thread worker processes on loopback, and its client."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as local, \
            distributed.Client(local) as client:
        yield local, client


def workers(cluster, count, timeout=120):
    """Scale the cluster to ``count`` workers and wait for them."""
    local, client = cluster
    local.scale(count)
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info()["workers"]) != count:
        assert time.monotonic() < deadline, f"the cluster did not reach {count} workers"
        time.sleep(0.2)


def in_background(action):
    """Run ``action`` on a thread now (the coordinator's loop must not wait for Dask)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def test_one_node_per_host_with_curve_gives_the_draws_of_exmc_sample(cluster, tmp_path):
    node_key, node_secret = keygen(tmp_path / "node", "node")
    alice_key, alice_secret = keygen(tmp_path / "alice", "alice")
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "alice.key").write_bytes(alice_key.read_bytes())
    workers(cluster, 2)
    with dask_nodes(cluster[1], workers_per_node=2, secret_key=node_secret,
                    allow=tmp_path / "clients") as nodes:
        [address] = nodes.addresses()  # two workers on one host: one node, one lock
        assert sorted(map(str, nodes.workers().values())) == sorted([address, "None"])
        idata = sample_chains(SMALL, nodes=nodes, chains=3, **RUN,
                              client_key=alice_secret, node_key=node_key)
        assert not answers_plaintext(address)  # the keys did reach the node
    assert idata.attrs["nodes"] == [address] * 3 and idata.attrs["moves"] == []
    assert_same_draws(idata, exmc.sample(SMALL, chains=3, **RUN))


def answers_plaintext(address, wait=2.0):
    import zmq

    from exmc.distributed import wire

    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(address)
        socket.send(wire.pack({"type": "hello"}))
        return bool(socket.poll(int(wait * 1000)))
    finally:
        socket.close()


MOVE_RUN = dict(LONG_RUN, num_samples=5000)


def test_a_worker_closed_mid_run_has_its_chains_moved_with_nothing_lost(cluster):
    workers(cluster, 2)
    closing = []

    with dask_nodes(cluster[1], workers_per_node=2, per_host=False, wait=2) as nodes:
        assert len(nodes.addresses()) == 2

        def close_a_worker_on_the_first_draw(msg):
            if msg["type"] == "exmc_sample" and not closing:
                closing.append(in_background(lambda: cluster[0].scale(1)))

        # two nodes of two workers each: one chain on each; the closed worker's goes over.
        # Chains long enough to outlast closing a Dask worker on a quiet machine (seconds).
        idata = sample_chains(LONG, nodes=nodes, chains=2, node_timeout=10.0,
                              stream_to=close_a_worker_on_the_first_draw, **MOVE_RUN)
        closing[0].join(60)
    routes = [where.split(" > ") for where in idata.attrs["nodes"]]
    [chain] = [c for c, route in enumerate(routes) if len(route) == 2]
    gone, stayed = routes[chain]
    assert routes[1 - chain] == [stayed] and gone != stayed
    [move] = idata.attrs["moves"]
    assert move.startswith(f"chain {chain}: {gone} -> {stayed} at iteration ")
    assert_same_draws(idata, exmc.sample(LONG, chains=2, **MOVE_RUN))


def test_a_worker_added_mid_run_receives_the_chains_of_the_workers_gone(cluster):
    workers(cluster, 1)
    replaced = []

    with dask_nodes(cluster[1], workers_per_node=2, per_host=False) as nodes:
        [first] = nodes.addresses()

        def replace_the_worker(msg):
            if msg["type"] == "exmc_sample" and not replaced:
                # every worker goes, then a new one comes: the chains wait, then move there
                replaced.append(in_background(lambda: (workers(cluster, 0),
                                                       workers(cluster, 1))))

        idata = sample_chains(LONG, nodes=nodes, chains=2, node_timeout=10.0,
                              wait_for_nodes=180.0, stream_to=replace_the_worker, **LONG_RUN)
        replaced[0].join(60)
        [second] = nodes.addresses()
    assert second != first, idata.attrs
    # A chain may finish on the first node while its worker is being closed (a quiet machine);
    # the others wait for the new worker and move there.
    moved = f"{first} > {second}"
    assert moved in idata.attrs["nodes"] and set(idata.attrs["nodes"]) <= {first, moved}
    assert len(idata.attrs["moves"]) == idata.attrs["nodes"].count(moved) and all(
        f"{first} -> {second}" in move for move in idata.attrs["moves"])
    assert_same_draws(idata, exmc.sample(LONG, chains=2, **LONG_RUN))


def test_a_node_off_loopback_without_keys_is_refused_naming_the_fix(cluster):
    workers(cluster, 2)
    started = time.monotonic()
    with pytest.raises(NodeError, match=r"0\.0\.0\.0, not a loopback address: pass secret_key="):
        dask_nodes(cluster[1], bind_host="0.0.0.0", per_host=False)
    assert time.monotonic() - started < 60  # said at once, not after the start timeout


def test_a_dead_node_is_restarted_and_another_worker_of_the_host_takes_over(cluster):
    """Last in this file: it retires a worker behind the LocalCluster's back."""
    import os
    import signal

    workers(cluster, 2)
    client = cluster[1]
    with dask_nodes(client, workers_per_node=1) as nodes:
        [first] = nodes.addresses()
        [(holder, status)] = [(w, s) for w, s in nodes.refresh().items() if s["address"]]
        os.kill(status["pid"], signal.SIGKILL)  # the plugin starts it again, on a new port
        second = wait_for_node(nodes, lambda found: found and found != [first])
        assert nodes.refresh()[holder]["restarts"] == 1
        client.retire_workers([holder])  # its lock goes with it: the other worker takes over
        third = wait_for_node(nodes, lambda found: found and found != second)
        [(taker, _)] = [(w, s) for w, s in nodes.refresh().items() if s["address"]]
        assert taker != holder and len(third) == 1


def wait_for_node(nodes, done, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = nodes.addresses()
        if done(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"no such node set within {timeout} s: {nodes.workers()}")
