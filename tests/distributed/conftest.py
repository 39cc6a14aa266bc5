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


@pytest.fixture
def start_node(tmp_path):
    """start_node(*args, env=None) -> RunningNode, on a free loopback port unless --bind is given."""
    nodes = []

    def start(*args, env=None):
        log = tmp_path / f"node{len(nodes)}.log"
        command = [sys.executable, "-m", "exmc.distributed.cli", *args]
        if "--bind" not in args:
            command += ["--bind", "tcp://127.0.0.1:*"]
        with open(log, "w") as fh:
            popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=fh, env=env)
        node = RunningNode(popen, None, log)
        nodes.append(node)
        node.address = wait_for_listening(log, popen, timeout=60)
        return node

    yield start
    for node in nodes:
        node.stop()
