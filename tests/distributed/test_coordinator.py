"""The coordinator against real exmc-node daemons on loopback: same draws as local chains,
streaming, warmup once, node failure, unreachable nodes, live node sets."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.distributed import NodeError, sample_chains
from exmc.distributed.coordinator import wait_for_listening
from tests.distributed.conftest import RunningNode, launch

Y = np.random.default_rng(1).normal(3.0, 1.0, size=20)
SMALL = Builder().rv("mu", Normal(0, 5)).rv("sigma", HalfNormal(2.0)).obs("y", Normal("mu", "sigma"), Y)
RUN = {"num_samples": 200, "num_warmup": 200, "seed": 5, "progressbar": False}
# Slow enough per iteration (20,000 observations) that a node can be killed mid-chain.
Y_LONG = np.random.default_rng(2).normal(1.0, 2.0, size=20_000)
LONG = (Builder().rv("mu", Normal(0, 5)).rv("sigma", HalfNormal(5.0))
        .obs("y", Normal("mu", "sigma"), Y_LONG))
LONG_RUN = {"num_samples": 1000, "num_warmup": 500, "seed": 11, "progressbar": False}


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """Three nodes with one worker each, shared by the tests that leave them running."""
    folder = tmp_path_factory.mktemp("trio")
    nodes = []
    try:
        for k in range(3):
            nodes.append(launch(folder / f"node{k}.log", "--workers", "1"))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def assert_same_draws(idata, reference):
    for name in reference.posterior.data_vars:
        np.testing.assert_array_equal(idata.posterior[name].values, reference.posterior[name].values)
    for name in ("step_size", "tree_depth", "diverging", "lp"):
        np.testing.assert_array_equal(idata.sample_stats[name].values,
                                      reference.sample_stats[name].values)


def test_three_nodes_give_the_draws_of_local_chains(trio):
    addresses = [node.address for node in trio]
    idata = sample_chains(SMALL, nodes=addresses, chains=4, **RUN)
    assert_same_draws(idata, exmc.sample(SMALL, chains=4, **RUN))
    # one worker each: chains 0..2 take one node each, chain 3 waits for the first to free
    assert idata.attrs["nodes"][:3] == addresses and idata.attrs["nodes"][3] in addresses
    assert idata.attrs["moves"] == []


def test_a_run_on_nodes_keeps_a_checkpoint_that_resumes_anywhere(trio, tmp_path):
    """Nodes are an executor of exmc.sample: checkpoint= works there, and the run it keeps
    is extended on this machine with the draws of one longer run."""
    folder = tmp_path / "run"
    idata = exmc.sample(SMALL, chains=2, checkpoint=folder, diagnostics=False,
                        executor=exmc.distributed.Nodes([trio[0].address, trio[1].address]),
                        **RUN)
    assert_same_draws(idata, exmc.sample(SMALL, chains=2, **RUN))
    assert (folder / "trace.nc").exists()
    more = dict(RUN, num_samples=RUN["num_samples"] + 50)
    longer = exmc.resume(folder, num_samples=more["num_samples"], progressbar=False,
                         diagnostics=False)
    assert_same_draws(longer, exmc.sample(SMALL, chains=2, **more))


def test_an_executor_object_takes_no_cores():
    with pytest.raises(ValueError, match="cores= applies to executor='pool' or 'processes'"):
        exmc.sample(SMALL, cores=2, executor=exmc.distributed.Nodes(["local"]), **RUN)


def test_stream_to_gets_every_draw_of_every_node(trio):
    messages = []
    idata = sample_chains(SMALL, nodes=[node.address for node in trio], chains=3,
                          stream_to=messages.append, run_id="dist", **RUN)
    total = RUN["num_warmup"] + RUN["num_samples"]
    for chain in range(3):
        mine = [m for m in messages if m["chain"] == chain]
        draws = [m for m in mine if m["type"] == "exmc_sample"]
        assert [m["i"] for m in draws] == list(range(total))
        assert [m["seq"] for m in mine] == list(range(total + 1))
        assert mine[-1]["type"] == "exmc_done" and mine[-1]["num_draws"] == total
        kept = [m["point"]["mu"] for m in draws if not m["warmup"]]
        np.testing.assert_array_equal(kept, idata.posterior["mu"].values[chain])
    assert {m["run"] for m in messages} == {"dist"}


def test_warmup_once_shares_the_tuning_of_chain_0(trio):
    idata = sample_chains(SMALL, nodes=[node.address for node in trio], chains=3, warmup="once",
                          save_warmup=True, **RUN)
    reference = exmc.sample(SMALL, chains=1, **RUN)
    # chain 0 is an ordinary chain; the others start from its tuning, each on its own stream
    np.testing.assert_array_equal(idata.posterior["mu"].values[0], reference.posterior["mu"].values[0])
    step = idata.sample_stats["step_size"].values
    assert np.all(step == step[0, 0])
    assert np.all(np.isnan(idata.warmup_posterior["mu"].values[1:]))
    assert np.all(idata.warmup_sample_stats["tree_depth"].values[1:] == -1)
    assert not np.isnan(idata.warmup_posterior["mu"].values[0]).any()
    mu = idata.posterior["mu"].values
    assert not np.array_equal(mu[1], mu[2])
    assert abs(mu.mean() - Y.mean()) < 0.5


def test_sigkill_of_a_node_mid_run_loses_no_draw(start_node):
    nodes = [start_node("--workers", "1") for _ in range(3)]
    victim = nodes[1]  # runs chain 1 (one worker per node, chains placed in order)
    killed_at = []

    def kill_on_first_draw_of_chain_1(msg):
        if msg["type"] == "exmc_sample" and msg["chain"] == 1 and not killed_at:
            victim.popen.kill()
            killed_at.append(msg["i"])

    idata = sample_chains(LONG, nodes=[node.address for node in nodes], chains=3,
                          stream_to=kill_on_first_draw_of_chain_1, node_timeout=3.0, **LONG_RUN)
    assert killed_at and victim.popen.wait(10) == -9
    assert idata.attrs["nodes"][1].startswith(victim.address + " > ")
    [move] = idata.attrs["moves"]
    assert move.startswith(f"chain 1: {victim.address} -> ") and "silent" in move
    assert_same_draws(idata, exmc.sample(LONG, chains=3, **LONG_RUN))


def test_when_every_node_dies_the_chains_finish_locally(start_node):
    node = start_node("--workers", "2")
    messages = []

    def kill_after_first_block(msg):
        messages.append(msg)
        if len(messages) == 1:
            node.popen.kill()

    idata = sample_chains(LONG, nodes=[node.address], chains=2, stream_to=kill_after_first_block,
                          node_timeout=3.0, on_node_failure="local", **LONG_RUN)
    assert [where.split(" > ") for where in idata.attrs["nodes"]] == [[node.address, "local"]] * 2
    assert len(idata.attrs["moves"]) == 2
    assert_same_draws(idata, exmc.sample(LONG, chains=2, **LONG_RUN))


def test_when_the_only_node_dies_without_fallback_the_run_fails_clearly(start_node):
    node = start_node("--workers", "1")

    def kill_at_once(msg):
        if node.popen.poll() is None:
            node.popen.kill()

    with pytest.raises(NodeError, match="no chain made a draw.*no node is left"):
        sample_chains(LONG, nodes=[node.address], chains=1, stream_to=kill_at_once,
                      node_timeout=1.0, **LONG_RUN)


@pytest.mark.parametrize("drop, model, run", [("3", LONG, LONG_RUN), ("done", SMALL, RUN)])
def test_messages_lost_on_the_way_are_replayed(start_node, drop, model, run):
    """A node drops one worker message (a block, or a chain's closing message) as a lossy
    link would: the gap, or the job ending with a chain unfinished, is noticed and the
    chains run again from their last received state, so the trace is still exact."""
    node = start_node("--workers", "2", env={**os.environ, "EXMC_NODE_DROP": drop})
    idata = sample_chains(model, nodes=[node.address], chains=2, node_timeout=3.0, **run)
    assert "dropped worker message" in node.log_text()
    assert idata.attrs["moves"] and all("replayed on" in m for m in idata.attrs["moves"])
    assert_same_draws(idata, exmc.sample(model, chains=2, **run))


def test_an_unreachable_node_is_a_clear_error_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(NodeError, match=r"tcp://127\.0\.0\.1:9.*no answer within 1 s"):
        sample_chains(SMALL, nodes=["tcp://127.0.0.1:9"], chains=1, connect_timeout=1.0, **RUN)
    assert time.monotonic() - start < 30


def test_an_unreachable_node_falls_back_to_a_local_node():
    with pytest.warns(RuntimeWarning, match="nodes not used"):
        idata = sample_chains(SMALL, nodes=["tcp://127.0.0.1:9"], chains=2, connect_timeout=1.0,
                              on_node_failure="local", **RUN)
    assert idata.attrs["nodes"] == ["local", "local"]
    assert_same_draws(idata, exmc.sample(SMALL, chains=2, **RUN))


@pytest.mark.parametrize("kwargs, problem", [
    ({"nodes": "tcp://127.0.0.1:5555"}, "nodes must be a non-empty list"),
    ({"nodes": []}, "nodes must be a non-empty list"),
    ({"warmup": "twice"}, "warmup must be 'each' or 'once'"),
    ({"on_node_failure": "retry"}, "on_node_failure must be 'error' or 'local'"),
    ({"run_id": "a b"}, "run_id must be an identifier"),
    ({"init": {"nu": 1.0}}, "'nu'.*not sampled variables"),
])
def test_bad_arguments_are_named_before_any_node_is_contacted(kwargs, problem):
    arguments = {"nodes": ["tcp://127.0.0.1:9"], "chains": 1, **RUN, **kwargs}
    with pytest.raises(ValueError, match=problem):
        sample_chains(SMALL, **arguments)


def test_a_client_key_without_the_node_key_is_not_silently_plaintext(tmp_path):
    with pytest.raises(NodeError, match="needs both client_key=.*and node_key="):
        sample_chains(SMALL, nodes=["tcp://127.0.0.1:9"], chains=1,
                      client_key=str(tmp_path / "me.key_secret"), **RUN)


def test_stream_to_an_address_reaches_a_plain_subscriber(trio):
    import socket
    import threading

    import msgpack
    import zmq

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 10)
    sub.connect(address)
    sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
    bodies = []

    def read():  # until both chains said done, or 60 s of silence
        while sum(b"exmc_done" in body for body in bodies) < 2 and sub.poll(60_000):
            bodies.append(sub.recv_multipart()[1])

    reader = threading.Thread(target=read)
    reader.start()
    sample_chains(SMALL, nodes=[node.address for node in trio[:2]], chains=2, stream_to=address,
                  **RUN)
    reader.join(90)
    sub.close()
    messages = [msgpack.unpackb(body) for body in bodies]
    total = RUN["num_warmup"] + RUN["num_samples"]
    for chain in range(2):
        assert [m["seq"] for m in messages if m["chain"] == chain] == list(range(total + 1))


# ---- hardening ---------------------------------------------------------------------------------
def test_a_model_larger_than_the_node_accepts_is_refused_up_front(start_node):
    node = start_node("--max-message-mb", "0.05")  # 52,428 bytes
    big = Builder().rv("mu", Normal(0, 5)).obs("y", Normal("mu", 1.0),
                                               np.random.default_rng(0).normal(size=10_000))
    started = time.monotonic()
    with pytest.raises(NodeError, match=r"the model's IR is 80,\d\d\d\), more than node .* "
                                        r"accepts \(52,428 bytes; exmc-node --max-message-mb\)"):
        sample_chains(big, nodes=[node.address], chains=1, **RUN)
    assert time.monotonic() - started < 30
    assert "job" not in node.log_text()  # nothing was sent


def test_every_chain_failing_on_a_node_names_the_workers_error(start_node):
    # A start inside the support (checked here) where the density is zero (found there).
    node = start_node("--workers", "2")
    with pytest.raises(exmc.SamplingError) as caught:
        sample_chains(SMALL, nodes=[node.address], chains=2, init={"mu": 0.0, "sigma": 1e300},
                      **RUN)
    assert isinstance(caught.value, NodeError)
    assert set(caught.value.reasons) == {0, 1}
    for reason in caught.value.reasons.values():
        assert "gave up after 3 restarts" in reason
        assert "the worker's error: ValueError: the log density is not finite" in reason


def test_an_init_outside_its_support_is_refused_before_any_node_is_contacted():
    with pytest.raises(ValueError, match="init value for 'sigma'.*support"):
        sample_chains(SMALL, nodes=["tcp://127.0.0.1:9"], chains=2, init={"sigma": -1.0}, **RUN)


COORDINATOR = """
import sys, numpy as np
from exmc import Builder, Normal, HalfNormal
from exmc.distributed import sample_chains
y = np.random.default_rng(2).normal(1.0, 2.0, size=20_000)
m = Builder().rv("mu", Normal(0, 5)).rv("sigma", HalfNormal(5.0)).obs("y", Normal("mu", "sigma"), y)
sample_chains(m, nodes=["local"], chains=2, num_samples=10**6, num_warmup=100, progressbar=False)
"""


@pytest.mark.timeout(180)
def test_sigkill_of_a_local_coordinator_leaves_no_process(tmp_path):
    import signal
    import subprocess
    import sys

    from tests.distributed.test_node import children, running, wait_until

    coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR], cwd=os.getcwd())
    try:
        def node_and_workers():
            nodes = [pid for pid, cmd in children(coordinator.pid).items()
                     if "exmc.distributed.cli" in cmd]
            if not nodes:
                return None
            found = {pid for pid, cmd in children(nodes[0]).items() if "resource_tracker" not in cmd}
            return ({nodes[0]} | found) if len(found) >= 2 else None

        pids = wait_until(node_and_workers, 120, "the local node's workers", every=0.2)
        everything = set(pids)
        for pid in pids:
            everything |= set(children(pid))
    finally:
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(10)
    wait_until(lambda: not any(running(pid) for pid in everything), 30,
               "the local node and its workers to exit")


def test_nodes_started_at_once_with_one_fresh_shared_cache_all_run_their_chains(tmp_path):
    """Several nodes on one host share its compile cache (the default is one per host): their
    workers compile the same new model at the same moment, and every chain must run."""
    cache = tmp_path / "cache"
    nodes = []
    try:
        for k in range(3):  # launched together, then waited for
            log = tmp_path / f"node{k}.log"
            with open(log, "w") as fh:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "exmc.distributed.cli", "--bind", "tcp://127.0.0.1:*",
                     "--workers", "1", "--cache-dir", str(cache)],
                    stdout=subprocess.DEVNULL, stderr=fh)
            nodes.append(RunningNode(popen, None, log))
        for node in nodes:
            node.address = wait_for_listening(node.log, node.popen, timeout=120)
        idata = sample_chains(SMALL, nodes=[node.address for node in nodes], chains=3, **RUN)
        assert idata.attrs["nodes"] == [node.address for node in nodes]
        assert len(list((cache / "models").glob("*.py"))) == 1  # the one model, compiled there
        assert_same_draws(idata, exmc.sample(SMALL, chains=3, **RUN))
    finally:
        for node in nodes:
            node.stop()


class NodeSet:
    """A live node set for the coordinator: ``addresses()`` answers what the test put in."""

    def __init__(self, *addresses):
        self.listed = list(addresses)

    def addresses(self):
        return list(self.listed)


def test_an_empty_node_set_is_waited_for_then_on_node_failure_applies():
    started = time.monotonic()
    with pytest.raises(NodeError, match="no node is left and none joined the node set "
                                        "within 1 s"):
        sample_chains(SMALL, nodes=NodeSet(), chains=2, wait_for_nodes=1.0, **RUN)
    assert time.monotonic() - started < 30


def test_a_node_joining_an_empty_set_mid_run_takes_every_chain(start_node):
    node = start_node("--workers", "2")
    nodes = NodeSet()
    timer = threading.Timer(2.0, lambda: nodes.listed.append(node.address))
    timer.start()
    try:
        idata = sample_chains(SMALL, nodes=nodes, chains=2, wait_for_nodes=60.0, **RUN)
    finally:
        timer.cancel()
    assert idata.attrs["nodes"] == [node.address] * 2
    assert_same_draws(idata, exmc.sample(SMALL, chains=2, **RUN))


def test_plain_progress_and_warnings_after_sampling_as_exmc_sample(trio, capsys):
    """Output to a file gets plain progress lines; trees cut at depth 1 get exmc.sample's
    tree-depth warning."""
    addresses = [node.address for node in trio]
    with pytest.warns(exmc.SamplingWarning, match="max_tree_depth"):
        sample_chains(SMALL, nodes=addresses[:1], chains=2, max_tree_depth=1,
                      **dict(RUN, num_samples=30, num_warmup=30, progressbar=True))
    out = capsys.readouterr().out
    assert "chain 0: 60/60 draws" in out and "chain 1: 60/60 draws" in out, out
