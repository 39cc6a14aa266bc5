"""The ``exmc-node`` command: serve chains to coordinators, or make CURVE keys.

    exmc-node --bind tcp://0.0.0.0:5555 --workers 8 --secret-key node.key_secret --allow clients/
    exmc-node --bind tcp://127.0.0.1:* --address-file node.address   (for launchers)
    exmc-node keygen NAME [--dir DIR]
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from exmc.distributed import wire
from exmc.runtime.cli import positive


def serve_parser():
    p = argparse.ArgumentParser(
        prog="exmc-node",
        description="Run chains for exmc coordinators (exmc.distributed.sample_chains). Jobs "
                    "arrive as schema-checked msgpack (model IR, data, sampler options, chain "
                    "seeds); each chain runs in a supervised worker process; draws go back "
                    "to the coordinator as they are made. Stops cleanly on SIGTERM or Ctrl-C. "
                    "'exmc-node keygen NAME' makes a CURVE key pair.",
        epilog="Listening on a non-loopback address needs --secret-key and --allow: clients "
               "are then authenticated (ZeroMQ CURVE + ZAP) and traffic is encrypted.")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555", metavar="ADDRESS",
                   help="ZeroMQ address to listen on (default tcp://127.0.0.1:5555; "
                        "tcp://127.0.0.1:* picks a free port)")
    p.add_argument("--workers", type=positive(int), metavar="N",
                   help="chains run at once over all jobs (default: the number of CPUs)")
    p.add_argument("--secret-key", metavar="FILE",
                   help="this node's CURVE key pair (a .key_secret file from exmc-node keygen)")
    p.add_argument("--allow", metavar="DIR",
                   help="folder of the public .key files of the clients allowed to connect "
                        "(read at start)")
    p.add_argument("--client-timeout", type=positive(float), default=10.0, metavar="SECONDS",
                   help="stop a job whose coordinator has been silent this long (default 10)")
    p.add_argument("--max-message-mb", type=positive(float),
                   default=wire.MAX_MESSAGE_BYTES / 2**20, metavar="MB",
                   help=f"largest request accepted; a bigger one drops the connection "
                        f"(default {wire.MAX_MESSAGE_BYTES // 2**20})")
    p.add_argument("--read-timeout", type=positive(float), default=30.0, metavar="SECONDS",
                   help="refuse a submitted model not read and checked within this time "
                        "(default 30; reading never stops the node answering)")
    p.add_argument("--max-chain-mb", type=positive(float), default=4096.0, metavar="MB",
                   help="refuse a job whose chain would need more memory than this for its "
                        "draws and state (parameters x iterations; default 4096)")
    p.add_argument("--heartbeat-timeout", type=positive(float), default=10.0, metavar="SECONDS",
                   help="a chain worker silent this long is taken as hung and restarted; a floor: "
                        "a worker promises each next block within 10x its last (default 10)")
    p.add_argument("--max-connections", type=positive(int), default=256, metavar="N",
                   help="peers connected at once; more are turned away as they connect "
                        "(default 256)")
    p.add_argument("--parent-fd", type=int, metavar="FD",
                   help="stop when this inherited pipe closes, that is when the process that "
                        "started the node dies (how a coordinator's 'local' node is started)")
    p.add_argument("--name", help="node name reported to coordinators (default: host name)")
    p.add_argument("--address-file", metavar="PATH",
                   help="write the bound address (the port of tcp://...:* resolved) to PATH "
                        "once the node answers requests; for launchers")
    p.add_argument("--print-address", action="store_true",
                   help="print the bound address on stdout (one line) once the node answers")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="compile cache of this node's workers (default: $EXMC_CACHE_DIR, else "
                        "a folder per host, ~/.cache/exmc/nodes/HOST, so that nodes sharing a "
                        "home directory over the network each keep their own)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="stderr log level (default info)")
    return p


def keygen_parser():
    p = argparse.ArgumentParser(
        prog="exmc-node keygen",
        description="Write NAME.key (public: give it to the other side) and NAME.key_secret "
                    "(keep it: mode 0600) for CURVE. A node uses its .key_secret with "
                    "--secret-key and lists clients' .key files in its --allow folder; a "
                    "client passes its .key_secret as client_key= and the node's .key as node_key=. "
                    "Existing key files are never overwritten.")
    p.add_argument("name", help="key name, e.g. node1 or alice")
    p.add_argument("--dir", default=".", help="folder to write the two files in (default .)")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keygen"]:
        args = keygen_parser().parse_args(argv[1:])
        from exmc.distributed.keys import KeyFileError, keygen
        try:
            public, secret = keygen(args.dir, args.name)
        except (KeyFileError, OSError) as err:
            print(f"exmc-node keygen: {err}", file=sys.stderr)
            return 2
        print(f"public key: {public}\nsecret key: {secret}")
        return 0
    args = serve_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s exmc-node %(levelname)s %(message)s")
    import zmq

    from exmc.distributed.keys import KeyFileError
    from exmc.distributed.node import Node, NodeConfigError
    os.environ["EXMC_CACHE_DIR"] = node_cache_dir(args.cache_dir)  # the workers inherit it
    try:
        node = Node(args.bind, args.workers, args.secret_key, args.allow, args.client_timeout,
                    int(args.max_message_mb * 2**20), args.name, read_timeout=args.read_timeout,
                    max_chain_bytes=int(args.max_chain_mb * 2**20), parent_fd=args.parent_fd,
                    heartbeat_timeout=args.heartbeat_timeout,
                    max_connections=args.max_connections)
    except (NodeConfigError, KeyFileError) as err:
        logging.getLogger("exmc.node").error("%s", err)
        return 2
    except zmq.ZMQError as err:
        logging.getLogger("exmc.node").error("cannot listen on %s: %s", args.bind, err)
        return 2
    def ready(address):
        if args.address_file:
            write_address(args.address_file, address)
        if args.print_address:
            print(address, flush=True)

    try:
        # closes the node (and its workers) however it ends
        node.serve(restore_signals=False, ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        if args.address_file:
            try:
                os.unlink(args.address_file)  # a launcher must not find a stale address
            except OSError:
                pass
    return 0


def node_cache_dir(chosen=None):
    """The compile cache of a node: ``chosen``, else $EXMC_CACHE_DIR, else one per host.

    A cluster's nodes often share a home directory over the network; a folder per host
    keeps each host's generated modules and Numba's machine code for its own CPU apart.
    Nodes on one host share theirs (concurrent compiles there are safe: files are
    written whole and renamed into place).
    """
    if chosen:
        return str(Path(chosen).expanduser().resolve())
    if os.environ.get("EXMC_CACHE_DIR"):
        return os.environ["EXMC_CACHE_DIR"]
    return str(Path.home() / ".cache" / "exmc" / "nodes" / socket.gethostname())


def write_address(path, address):
    """Write ``address`` to ``path`` whole (a reader never sees half a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(address + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
