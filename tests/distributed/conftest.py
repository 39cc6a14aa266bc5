"""Fixtures for the distributed tests: exmc-node daemons on loopback, stopped after each test."""
import subprocess
import sys

import pytest

from exmc.distributed.coordinator import wait_for_listening


class RunningNode:
    """An exmc-node subprocess; ``address`` is where it listens, ``log`` its stderr file."""

    def __init__(self, popen, address, log):
        self.popen, self.address, self.log = popen, address, log

    def log_text(self):
        return self.log.read_text()

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


def launch(log, *args, env=None):
    """Start ``exmc-node *args`` (on a free loopback port unless --bind is given), logging to
    the file ``log``; returns the RunningNode once it listens."""
    command = [sys.executable, "-m", "exmc.distributed.cli", *args]
    if "--bind" not in args:
        command += ["--bind", "tcp://127.0.0.1:*"]
    with open(log, "w") as fh:
        popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=fh, env=env)
    node = RunningNode(popen, None, log)
    try:
        node.address = wait_for_listening(log, popen, timeout=60)
    except BaseException:
        node.stop()
        raise
    return node


@pytest.fixture
def start_node(tmp_path):
    """start_node(*args, env=None) -> RunningNode; every node is stopped after the test."""
    nodes = []

    def start(*args, env=None):
        node = launch(tmp_path / f"node{len(nodes)}.log", *args, env=env)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
