"""exmc-node security: loopback by default, CURVE keys required elsewhere, allow-listed clients only.

Every node here listens on loopback; CURVE is switched on with --secret-key/--allow.
"""
import logging
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import exmc
import exmc.distributed
from exmc import Builder, HalfNormal, Normal
from exmc.distributed import cli
from exmc.distributed.coordinator import wait_for_listening
from exmc.distributed.keys import KeyFileError, keygen, load_public
from exmc.distributed.node import Node, NodeConfigError, is_loopback

Y = np.random.default_rng(2).normal(1.0, 2.0, size=30)
RUN = dict(chains=2, num_samples=200, num_warmup=200, seed=1, progressbar=False)


def model():
    return (Builder().rv("mu", Normal(0, 5)).rv("sigma", HalfNormal(3))
            .obs("y", Normal("mu", "sigma"), Y))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Key files: the node's pair, an allow-listed client's pair, an unknown client's pair."""
    root = tmp_path_factory.mktemp("keys")
    _, node_secret = keygen(root / "node", "node")
    allowed_public, allowed_secret = keygen(root / "alice", "alice")
    (root / "allow").mkdir()
    (root / "allow" / "alice.key").write_bytes(allowed_public.read_bytes())
    _, unknown_secret = keygen(root / "mallory", "mallory")
    return dict(root=root, node_secret=node_secret, node_public=root / "node" / "node.key",
                allow=root / "allow", client=allowed_secret, client_public=allowed_public,
                unknown=unknown_secret, unknown_public=root / "mallory" / "mallory.key")


class CurveNode:
    """An exmc-node subprocess with CURVE on, on a free loopback port."""

    def __init__(self, keys, log):
        self.log = log
        with open(log, "w") as fh:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "exmc.distributed.cli", "--bind", "tcp://127.0.0.1:*",
                 "--workers", "2", "--secret-key", str(keys["node_secret"]),
                 "--allow", str(keys["allow"])], stdout=subprocess.DEVNULL, stderr=fh)
        self.address = wait_for_listening(log, self.popen, timeout=60)

    def log_text(self):
        return self.log.read_text()

    def stop(self):
        self.popen.terminate()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture(scope="module")
def curve_node(keys):
    """One CURVE node shared by the module's tests (each start costs about a second)."""
    node = CurveNode(keys, keys["root"] / "node.log")
    yield node
    node.stop()


def exmc_node(*args, timeout=60):
    """Run the exmc-node command to its end; (exit status, stderr)."""
    done = subprocess.run([sys.executable, "-m", "exmc.distributed.cli", *args],
                          check=False, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr


# -- loopback unless told otherwise --------------------------------------------------------

def test_default_bind_is_loopback():
    assert is_loopback(cli.serve_parser().parse_args([]).bind)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:5555", "tcp://localhost:5555",
                                     "tcp://[::1]:5555", "ipc:///tmp/exmc-node"])
def test_loopback_addresses(address):
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.213.0.2:5555",
                                     "tcp://eth0:5555", "tcp://[::]:5555", "tcp://example.org:5555"])
def test_non_loopback_without_keys_is_refused_before_binding(address):
    assert not is_loopback(address)
    with pytest.raises(NodeConfigError, match="without CURVE keys"):
        Node(address)


def test_exmc_node_exits_2_on_non_loopback_without_keys():
    # An address this host does not have: were the check missing, bind would fail
    # with another message, so nothing is exposed even then.
    status, err = exmc_node("--bind", "tcp://10.213.0.2:*")
    assert status == 2
    assert "refusing to listen on non-loopback tcp://10.213.0.2:*" in err


# -- CURVE on -------------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_allow_listed_client_gets_every_draw_unchanged(curve_node, keys):
    assert "CURVE, clients from the allow list" in curve_node.log_text()
    secure = exmc.distributed.sample_chains(model(), nodes=[curve_node.address],
                                            client_key=str(keys["client"]),
                                            node_key=str(keys["node_public"]), **RUN)
    # Without CURVE: the coordinator's draws are bit-for-bit those of exmc.sample.
    plain = exmc.sample(model(), **RUN)
    for name in ("mu", "sigma"):
        assert secure.posterior[name].shape == (2, 200)
        assert np.all(np.isfinite(secure.posterior[name].values))
        np.testing.assert_array_equal(secure.posterior[name].values, plain.posterior[name].values)
    np.testing.assert_array_equal(secure.sample_stats["energy"].values,
                                  plain.sample_stats["energy"].values)
    assert secure.attrs["moves"] == []


def assert_refused(address, **keys):
    """sample_chains against ``address`` raises NodeError soon after connect_timeout."""
    start = time.monotonic()
    with pytest.raises(exmc.distributed.NodeError, match="no answer within 2 s"):
        exmc.distributed.sample_chains(model(), nodes=[address], connect_timeout=2, **keys, **RUN)
    assert time.monotonic() - start < 15


@pytest.mark.timeout(120)
def test_unknown_key_is_refused_and_logged(curve_node, keys):
    assert_refused(curve_node.address, client_key=str(keys["unknown"]),
                   node_key=str(keys["node_public"]))
    unknown = load_public(keys["unknown"]).decode()
    deadline = time.monotonic() + 10  # the node writes its log on its own time
    while unknown not in curve_node.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = curve_node.log_text()
    assert f"refused a client with CURVE public key {unknown}: not in the allow list" in log
    assert log.count(unknown) == 1  # the client's handshake retries are not logged again


@pytest.mark.timeout(120)
def test_plaintext_client_is_refused(curve_node):
    assert_refused(curve_node.address)


@pytest.mark.timeout(120)
def test_client_expecting_another_node_key_is_refused(curve_node, keys):
    assert_refused(curve_node.address, client_key=str(keys["client"]),
                   node_key=str(keys["unknown_public"]))


# -- key files ------------------------------------------------------------------------------

def test_keygen_command_and_no_overwrite(tmp_path, capsys):
    status, err = exmc_node("keygen", "node1", "--dir", str(tmp_path / "k"))
    assert status == 0, err
    public, secret = tmp_path / "k" / "node1.key", tmp_path / "k" / "node1.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert "secret-key" not in public.read_text()
    assert load_public(public) == load_public(secret)
    before = secret.read_bytes()
    assert cli.main(["keygen", "node1", "--dir", str(tmp_path / "k")]) == 2
    assert f"{public} already exists" in capsys.readouterr().err
    assert secret.read_bytes() == before


def test_keygen_refuses_a_path_as_name(tmp_path):
    with pytest.raises(KeyFileError, match="plain file name"):
        keygen(tmp_path / "k", "../elsewhere")
    assert not list(tmp_path.glob("elsewhere.key*"))


def test_exmc_node_exits_2_naming_a_missing_key_file(keys, tmp_path):
    missing = tmp_path / "missing.key_secret"
    status, err = exmc_node("--secret-key", str(missing), "--allow", str(keys["allow"]))
    assert status == 2
    assert f"key file {missing} does not exist" in err and "Traceback" not in err


def key_mistakes(keys, tmp):
    """{case: (exmc-node arguments, text its error must contain)}."""
    (tmp / "empty").mkdir()
    (tmp / "garbled").mkdir()
    (tmp / "garbled" / "bob.key").write_text('public-key = "too short"\n')
    secret, allow = str(keys["node_secret"]), str(keys["allow"])
    return {
        "public key as secret": (["--secret-key", str(keys["node_public"]), "--allow", allow],
                                 f"{keys['node_public']} holds no secret key"),
        "empty allow folder": (["--secret-key", secret, "--allow", str(tmp / "empty")],
                               f"{tmp / 'empty'} holds no .key files"),
        "allow is a file": (["--secret-key", secret, "--allow", secret], f"{secret} is not a folder"),
        "garbled allow-list key": (["--secret-key", secret, "--allow", str(tmp / "garbled")],
                                   f"{tmp / 'garbled' / 'bob.key'} holds a malformed key"),
        "secret key without allow": (["--secret-key", secret], "needs both --secret-key and --allow"),
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["public key as secret", "empty allow folder", "allow is a file",
                                  "garbled allow-list key", "secret key without allow"])
def test_key_mistakes_exit_2_naming_the_file(case, keys, tmp_path, caplog):
    # In-process main() (what the exmc-node script calls): each start of the command
    # costs a second; the subprocess tests above check the exit status end to end.
    args, message = key_mistakes(keys, tmp_path)[case]
    with caplog.at_level(logging.ERROR, logger="exmc.node"):
        assert cli.main(["--bind", "tcp://127.0.0.1:*", *args]) == 2
    assert message in caplog.text


@pytest.mark.parametrize("which", ["client_key", "node_key"])
def test_client_key_file_errors_name_the_file(which, keys, tmp_path):
    given = {"client_key": str(keys["client"]), "node_key": str(keys["node_public"])}
    if which == "client_key":
        given[which], message = str(keys["client_public"]), "holds no secret key"
    else:
        given[which], message = str(tmp_path / "nowhere.key"), "does not exist"
    # Keys are read before anything is sent: no node runs at this address, none is needed.
    with pytest.raises(exmc.distributed.NodeError, match=message) as info:
        exmc.distributed.sample_chains(model(), nodes=["tcp://127.0.0.1:9"], connect_timeout=2,
                                       **given, **RUN)
    assert given[which] in str(info.value)
