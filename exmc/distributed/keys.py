"""CURVE keys for exmc-node and its clients (ZeroMQ's CURVE encryption, ZAP authentication).

Key files are ZeroMQ certificates (``zmq.auth``): ``NAME.key`` holds the public key
and may be shared; ``NAME.key_secret`` holds both and stays with its owner.  A node
authenticates clients against an allow-list folder of public ``.key`` files, read
once when the node starts.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger("exmc.node")

# A refused key is logged at most this often, so a client retrying its handshake
# (every 100 ms by default) does not flood the node's log.
REFUSAL_LOG_SECONDS = 60.0

_HEADER = "#   ZeroMQ CURVE {kind} Certificate, made by exmc-node keygen\n\nmetadata\ncurve\n"


class KeyFileError(ValueError):
    """A key file that cannot be used."""


def keygen(folder, name):
    """Write ``folder/name.key`` and ``folder/name.key_secret``; returns their paths.

    Existing key files are never overwritten (that would lose a node's or client's
    identity), and the secret file is created mode 0600, never readable by others.
    """
    import zmq

    if not name or Path(name).name != name or name.startswith("."):
        raise KeyFileError(f"key name {name!r} must be a plain file name")
    folder = Path(folder)
    public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public_path, secret_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; not overwriting a key")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    _write(secret_path, _HEADER.format(kind="Secret")
           + f'    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n', 0o600)
    _write(public_path, _HEADER.format(kind="Public")
           + f'    public-key = "{public.decode()}"\n', 0o644)
    return public_path, secret_path


def _write(path, text, mode):
    # O_EXCL: a file that appeared since the check is not overwritten either.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def load_keypair(path):
    """(public, secret) from a ``.key_secret`` file."""
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key: pass the .key_secret file, not the .key file")
    return public, secret


def load_public(path):
    """The public key of a ``.key`` (or ``.key_secret``) file."""
    return _load(path)[0]


def load_allow_list(folder):
    """The public keys of the ``.key`` files in ``folder``; a bad file is an error, not skipped."""
    allow = Path(folder)
    if not allow.is_dir():
        raise KeyFileError(f"allow list {folder} is not a folder (it must hold client .key files)")
    files = sorted(allow.glob("*.key"))
    if not files:
        raise KeyFileError(f"allow list {folder} holds no .key files: nobody could connect")
    return {load_public(path) for path in files}


def _load(path):
    import zmq.auth

    path = Path(path)
    if not path.exists():
        raise KeyFileError(f"key file {path} does not exist")
    if not path.is_file():
        raise KeyFileError(f"key file {path} is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as err:  # noqa: BLE001 -- unreadable, undecodable or no key: all one error
        raise KeyFileError(f"{path} is not a ZeroMQ certificate file: {err}") from None
    for key in (public, secret):
        if key is not None and not _is_z85_key(key):
            raise KeyFileError(f"{path} holds a malformed key (not 40 characters of Z85)")
    return public, secret


def _is_z85_key(key):
    from zmq.utils import z85

    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except Exception:  # noqa: BLE001 -- any decoding failure means malformed
        return False


class _AllowList:
    """ZAP credentials callback: admit the allow-listed keys and log the ones refused."""

    def __init__(self, keys, folder):
        self.keys, self.folder = keys, folder
        self.logged: dict = {}  # refused key -> when it was last logged

    def callback(self, domain, key):
        if key in self.keys:
            return True
        now = time.monotonic()
        if now - self.logged.get(key, -math.inf) > REFUSAL_LOG_SECONDS:
            if len(self.logged) > 1000:  # bounded, whatever a client sends
                self.logged.clear()
            self.logged[key] = now
            log.warning("refused a client with CURVE public key %s: not in the allow list %s",
                        key.decode(errors="replace"), self.folder)
        return False


def serve_curve(socket, secret_key_file, allow_folder):
    """Make ``socket`` a CURVE server admitting only the clients whose public keys are in
    ``allow_folder``; returns the running authenticator (stop it when done)."""
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support")
    # Read every file before starting the authenticator thread, so a bad file stops
    # the node cleanly instead of leaving a thread behind.
    public, secret = load_keypair(secret_key_file)
    allowed = load_allow_list(allow_folder)
    auth = ThreadAuthenticator(zmq.Context.instance())
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(allowed, allow_folder))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth


def use_curve(socket, client_secret_file, node_public_file):
    """Make ``socket`` a CURVE client of the node whose public key is in ``node_public_file``."""
    public, secret = load_keypair(client_secret_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = load_public(node_public_file)
