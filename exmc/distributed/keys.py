"""CURVE keys for exmc-node and its clients (ZeroMQ's CURVE encryption, ZAP authentication).

Key files are ZeroMQ certificates (``zmq.auth``): ``NAME.key`` holds the public key
and may be shared; ``NAME.key_secret`` holds both and stays with its owner.  A node
authenticates clients against an allow-list folder of public ``.key`` files.
"""
from __future__ import annotations

from pathlib import Path


class KeyFileError(ValueError):
    """A key file that cannot be used."""


def keygen(folder, name):
    """Write ``folder/name.key`` and ``folder/name.key_secret``; returns their paths."""
    import zmq.auth

    Path(folder).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(folder, name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def load_keypair(path):
    """(public, secret) from a ``.key_secret`` file."""
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key: pass the .key_secret file, not the .key file")
    return public, secret


def load_public(path):
    """The public key of a ``.key`` (or ``.key_secret``) file."""
    return _load(path)[0]


def _load(path):
    import zmq.auth

    if not Path(path).is_file():
        raise KeyFileError(f"key file {path} does not exist")
    try:
        return zmq.auth.load_certificate(path)
    except Exception as err:
        raise KeyFileError(f"{path} is not a ZeroMQ certificate file: {err}") from None


def serve_curve(socket, secret_key_file, allow_folder):
    """Make ``socket`` a CURVE server admitting only the clients whose public keys are in
    ``allow_folder``; returns the running authenticator (stop it when done)."""
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support")
    allow = Path(allow_folder)
    if not allow.is_dir() or not any(allow.glob("*.key")):
        raise KeyFileError(f"allow list {allow_folder} must be a folder of client .key files")
    public, secret = load_keypair(secret_key_file)
    auth = ThreadAuthenticator(zmq.Context.instance())
    auth.start()
    auth.configure_curve(domain="*", location=str(allow))
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
