"""exmc-node across a real network link that is cut mid-run.

Two network namespaces joined by a veth pair stand for two hosts: an exmc-node in one
(on its veth address, so with CURVE keys), the coordinator in the other.  The link goes
down as the first draw arrives; the coordinator must notice the silence, start a local
node in its own namespace and resume the chains there from their last received state,
giving the draws of a plain exmc.sample run.

Needs root and ``ip netns``; skipped otherwise.  Addresses (10.213.0.0/30) exist only
inside the two namespaces, which are removed after each test whatever happens.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.distributed.coordinator import wait_for_listening
from exmc.distributed.keys import keygen

COORDINATOR_IP, NODE_IP = "10.213.0.1", "10.213.0.2"
NODE_ADDRESS = f"tcp://{NODE_IP}:5555"  # the port is free: the namespace is new
# Much data, so each chain samples for about a second after its first draws arrive.
Y = np.random.default_rng(3).normal(2.0, 1.5, size=100_000)
RUN = dict(chains=2, num_samples=300, num_warmup=300, seed=5, progressbar=False)

# The coordinator, run inside its namespace; prints a JSON summary, saves the draws.
COORDINATOR = """
import json, subprocess, sys
import numpy as np
import exmc.distributed
from exmc.ir.serialize import loads

args = json.loads(sys.argv[1])
with open(args["model"], "rb") as fh:
    model = loads(fh.read())
cut_at = []

def on_message(message):
    # Cut the link when the first draw arrives: the node is then mid-run.
    if not cut_at and message["type"] == "exmc_sample":
        cut_at.append(message["i"])
        subprocess.run(["ip", "link", "set", "dev", args["veth"], "down"], check=True, timeout=30)

idata = exmc.distributed.sample_chains(
    model, nodes=[args["node"]], client_key=args["client_key"], node_key=args["node_key"],
    stream_to=on_message, on_node_failure="local", node_timeout=2, **args["run"])
np.savez(args["draws"], **{name: idata.posterior[name].values for name in ("mu", "sigma")})
print(json.dumps({"cut_at": cut_at, "moves": list(idata.attrs["moves"]),
                  "nodes": list(idata.attrs["nodes"])}))
"""


def model():
    return (Builder().rv("mu", Normal(0, 5)).rv("sigma", HalfNormal(3))
            .obs("y", Normal("mu", "sigma"), Y))


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


class Network:
    """Namespace and veth names of one test's two 'hosts'."""

    def __init__(self):
        tag = f"{os.getpid()}{uuid.uuid4().hex[:4]}"  # unique even between concurrent runs
        self.coordinator_ns, self.node_ns = f"exmc-c{tag}", f"exmc-n{tag}"
        self.coordinator_veth, self.node_veth = f"xv{tag}c", f"xv{tag}n"  # at most 15 chars

    def exec(self, ns, *command):
        return ["ip", "netns", "exec", ns, *command]


def kill_everything_in(ns):
    """SIGKILL what is left in our namespace: the node, coordinator and their children."""
    pids = ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def network():
    if os.geteuid() != 0:
        pytest.skip("needs root to make network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2)")
    net = Network()
    made = []
    try:
        for ns in (net.coordinator_ns, net.node_ns):
            done = ip("netns", "add", ns, check=False)
            if done.returncode != 0:
                pytest.skip(f"ip netns add failed: {done.stderr.strip()}")
            made.append(ns)
        done = ip("link", "add", net.coordinator_veth, "type", "veth",
                  "peer", "name", net.node_veth, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a veth pair: {done.stderr.strip()}")
        for ns, veth, address in ((net.coordinator_ns, net.coordinator_veth, COORDINATOR_IP),
                                  (net.node_ns, net.node_veth, NODE_IP)):
            ip("link", "set", veth, "netns", ns)
            ip("-n", ns, "addr", "add", f"{address}/30", "dev", veth)
            ip("-n", ns, "link", "set", veth, "up")
            ip("-n", ns, "link", "set", "lo", "up")  # for the coordinator's local node
        yield net
    finally:
        for ns in made:
            kill_everything_in(ns)
            ip("netns", "del", ns, check=False)  # takes the veth end inside with it
        # A veth still in this namespace (setup failed before moving it).
        if net.coordinator_veth in ip("-o", "link", "show", check=False).stdout:
            ip("link", "del", net.coordinator_veth, check=False)


@pytest.fixture
def keys(tmp_path):
    keygen(tmp_path / "node", "node")
    client_public, client_secret = keygen(tmp_path / "client", "client")
    (tmp_path / "allow").mkdir()
    (tmp_path / "allow" / "client.key").write_bytes(client_public.read_bytes())
    return dict(secret=tmp_path / "node" / "node.key_secret", public=tmp_path / "node" / "node.key",
                allow=tmp_path / "allow", client=client_secret)


@pytest.fixture
def node(network, keys, tmp_path):
    """exmc-node in the node namespace on its veth address, with CURVE keys; its Popen."""
    log = tmp_path / "node.log"
    with open(log, "w") as fh:
        popen = subprocess.Popen(
            network.exec(network.node_ns, sys.executable, "-m", "exmc.distributed.cli",
                         "--bind", NODE_ADDRESS, "--workers", "2",
                         "--secret-key", str(keys["secret"]), "--allow", str(keys["allow"])),
            stdout=subprocess.DEVNULL, stderr=fh)
    try:
        assert wait_for_listening(log, popen, timeout=60) == NODE_ADDRESS
        yield popen
    finally:
        popen.terminate()
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)


@pytest.mark.timeout(120)
def test_node_without_keys_refuses_its_network_address(network):
    done = subprocess.run(network.exec(network.node_ns, sys.executable, "-m", "exmc.distributed.cli",
                                       "--bind", NODE_ADDRESS),
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"refusing to listen on non-loopback {NODE_ADDRESS} without CURVE keys" in done.stderr


@pytest.mark.timeout(180)
def test_cut_link_mid_run_resumes_chains_locally_with_the_same_draws(network, keys, node, tmp_path):
    (tmp_path / "model.msgpack").write_bytes(model().to_msgpack())
    (tmp_path / "coordinator.py").write_text(COORDINATOR)
    args = dict(model=str(tmp_path / "model.msgpack"), node=NODE_ADDRESS, veth=network.coordinator_veth,
                client_key=str(keys["client"]), node_key=str(keys["public"]),
                draws=str(tmp_path / "draws.npz"), run=RUN)
    done = subprocess.run(network.exec(network.coordinator_ns, sys.executable,
                                       str(tmp_path / "coordinator.py"), json.dumps(args)),
                          check=False, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert node.poll() is None  # the node is alive: only the link failed

    assert summary["cut_at"], "no draw arrived, so the link was never cut"
    assert summary["moves"], summary
    assert all(NODE_ADDRESS in move and "local" in move for move in summary["moves"]), summary
    assert all(nodes.startswith(NODE_ADDRESS) for nodes in summary["nodes"]), summary
    assert any(nodes.endswith("> local") for nodes in summary["nodes"]), summary

    draws = np.load(tmp_path / "draws.npz")
    plain = exmc.sample(model(), **RUN)
    for name in ("mu", "sigma"):
        assert draws[name].shape == (RUN["chains"], RUN["num_samples"])
        assert np.all(np.isfinite(draws[name]))
        np.testing.assert_array_equal(draws[name], plain.posterior[name].values)
