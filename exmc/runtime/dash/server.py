"""The dashboard's web server: one read-only page, its static files and a JSON snapshot, over stdlib HTTP.

Routes (GET and HEAD only; any other method gets 405, so the page cannot start, stop or
change a run -- nor can anything else through this server)::

    /                  the page (static/index.html)
    /static/NAME       the page's script and style, and the vendored uPlot (a fixed list)
    /api/state         the snapshot of ``DashState.snapshot`` as JSON; query ``sel`` is a
                       JSON map "run/name" -> element index choosing each variable's plotted element

Secure by default: the server binds 127.0.0.1.  Bound anywhere else it requires a token
(generated when not given) that the URL carries as ``?token=...``; the page and the
snapshot answer 403 without it (the static files are public library code and hold no run
data).  Bound to loopback without a token, the Host header must name the loopback address,
so a web page elsewhere cannot read the dashboard through DNS rebinding.  Responses carry a
Content-Security-Policy that allows only this server's own scripts and connections.

Draws arrive either by ``feed`` (a message dict, from ``exmc.sample(..., dashboard=True)``
in the same process) or from a ZeroMQ SUB socket connected to a run's address by a receiver
thread, which drains in batches and watches the connection (a socket monitor), so the page
can say when nothing is publishing there.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from exmc.runtime import protocol
from exmc.runtime.dash.state import DashState

STATIC = Path(__file__).with_name("static")
FILES = {  # name -> content type; nothing else under static/ is served
    "index.html": "text/html; charset=utf-8",
    "dash.js": "text/javascript; charset=utf-8",
    "dash.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_SELECTION = 4096            # characters of the sel query parameter
BATCH_SECONDS = 0.05            # the receiver holds the state's lock at most this long at a time


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_for(host: str, token: str | None) -> str | None:
    """The token a dashboard served on ``host`` requires: ``token`` if given (checked), else
    a random one off loopback, else none."""
    if token is not None:
        if not token or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
            raise ValueError("a dashboard token is ASCII letters, digits, - and _")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(18)


class Dashboard:
    """A live dashboard: a ``DashState``, an HTTP server for it and, given an address, a subscriber.

    Parameters
    ----------
    address : str, optional
        A run's ZeroMQ address to subscribe to (``exmc.sample_stream``'s ``stream_to``,
        a ``cores=`` run's, or ``sample_chains``'s).  Without it, draws come through ``feed``.
    host, port : str, int
        Where to serve the page; port 0 picks a free port (see ``url``).
    token : str, optional
        Required in the URL; generated when ``host`` is not a loopback address.
    run : str, optional
        Only this run id.
    refresh : float
        Snapshots the page asks for per second.
    **state_options
        Passed to ``DashState`` (``expected_chains``, ``trace_window``, ``quiet``, ...).

    The server and the subscriber run on daemon threads from construction until ``close``.
    """

    def __init__(self, address=None, host="127.0.0.1", port=0, token=None, run=None,
                 refresh=2.0, **state_options):
        token = token_for(host, token)
        if not refresh > 0:
            raise ValueError("refresh must be positive")
        self.host, self.token, self.refresh = host, token, float(refresh)
        self.state = DashState(run=run, **state_options)
        self.lock = threading.Lock()
        self.address = None
        self.connected = self.ever_connected = False
        self.received = 0                           # messages taken off the socket
        self._stop = threading.Event()
        self._subscriber = None
        self._cache: dict = {}
        server = _Server6 if ":" in host else _Server
        self.httpd = server((host, port), _Handler)
        self.httpd.dashboard = self
        self.port = self.httpd.server_address[1]
        self._http = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                      name="exmc-dash-http", daemon=True)
        self._http.start()
        # R-hat and ESS come from arviz, whose import takes seconds: start it now, not
        # on the first snapshot while draws are arriving.
        threading.Thread(target=_import_arviz, name="exmc-dash-import", daemon=True).start()
        if address is not None:
            try:
                self.subscribe(address)
            except BaseException:
                self.close()
                raise

    @property
    def url(self) -> str:
        host = socket.gethostname() if self.host in ("", "0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    # ---------------------------------------------------------------- draws in
    def feed(self, message: dict):
        """Fold in one decoded message (the callable sink of an in-process run)."""
        with self.lock:
            self.state.update(message)

    def subscribe(self, address: str):
        """Receive the messages published at ``address`` on a background thread."""
        if self._subscriber is not None:
            raise RuntimeError(f"already subscribed to {self.address}")
        self.address = address
        ready, failure = threading.Event(), []
        self._subscriber = threading.Thread(target=self._receive, args=(address, ready, failure),
                                            name="exmc-dash-sub", daemon=True)
        self._subscriber.start()
        ready.wait(10)
        if failure:
            self._subscriber.join(5)
            self._subscriber, self.address = None, None
            raise ValueError(f"cannot subscribe to {address!r}: {failure[0]}")

    def _receive(self, address, ready, failure):
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        context = zmq.Context()
        socket = context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES + 4096)
        run = self.state.run
        socket.setsockopt(zmq.SUBSCRIBE, protocol.topic(run) if run else b"exmc.")
        monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        try:
            socket.connect(address)
        except zmq.ZMQError as err:
            failure.append(str(err))
            self._stop.set()            # the loop below ends at once and closes the sockets
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        ready.set()
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if monitor in events:
                    while monitor.poll(0):
                        event = recv_monitor_message(monitor)["event"]
                        self.connected = event == zmq.EVENT_CONNECTED
                        self.ever_connected = self.ever_connected or self.connected
                if socket in events:
                    self._drain(socket, zmq)
        finally:
            socket.disable_monitor()
            monitor.close(linger=0)
            socket.close(linger=0)
            context.term()

    def _drain(self, socket, zmq):
        """Fold in what is waiting, holding the lock for at most BATCH_SECONDS at a time."""
        deadline = time.monotonic() + BATCH_SECONDS
        with self.lock:
            while time.monotonic() < deadline:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    return
                self.received += 1
                self.state.receive(frames)

    # ---------------------------------------------------------------- the page's data
    def snapshot(self, selection: dict | None = None) -> dict:
        connection = None if self.address is None else {
            "address": self.address, "connected": self.connected,
            "ever_connected": self.ever_connected}
        with self.lock:
            document = self.state.snapshot(selection, connection)
        document["refresh"] = self.refresh
        return document

    def snapshot_json(self, selection_text: str = "") -> bytes:
        """The snapshot as JSON bytes, reused for requests within half a refresh period."""
        now = time.monotonic()
        cached = self._cache.get(selection_text)
        if cached and now - cached[0] < 0.5 / self.refresh:
            return cached[1]
        body = json.dumps(self.snapshot(parse_selection(selection_text)), allow_nan=False,
                          separators=(",", ":")).encode()
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[selection_text] = (now, body)
        return body

    # ---------------------------------------------------------------- lifetime
    def close(self):
        """Stop serving and receiving."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._subscriber is not None:
            self._subscriber.join(5)

    def serve(self, until=None):
        """Block until ``until()`` is true (polled twice a second) or Ctrl-C; then close."""
        try:
            while until is None or not until():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _import_arviz():
    import arviz  # noqa: F401


def parse_selection(text: str) -> dict:
    """The ``sel`` query parameter: a JSON map "run/name" -> element index; anything else is {}."""
    if not text or len(text) > MAX_SELECTION:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items()
            if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    dashboard: Dashboard


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "exmc-dash"
    sys_version = ""
    protocol_version = "HTTP/1.0"      # one request per connection: nothing outlives close()

    def log_message(self, format, *args):       # quiet: the page polls twice a second
        pass

    def do_GET(self):
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _refuse(self):
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n",
                    "text/plain; charset=utf-8", extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, send_body):
        board = self.server.dashboard
        url = urllib.parse.urlsplit(self.path)
        try:
            query = urllib.parse.parse_qs(url.query, max_num_fields=8)
        except ValueError:
            return self._reply(HTTPStatus.BAD_REQUEST, b"too many query fields\n", "text/plain",
                               send_body)
        if url.path.startswith("/static/"):
            name = url.path[len("/static/"):]
            if name not in FILES:
                return self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", send_body)
            return self._reply(HTTPStatus.OK, (STATIC / name).read_bytes(), FILES[name], send_body)
        if url.path not in ("/", "/index.html", "/api/state"):
            return self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", send_body)
        if board.token is not None:
            given = query.get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), board.token.encode()):
                return self._reply(HTTPStatus.FORBIDDEN, b"this dashboard needs the token its "
                                   b"URL was printed with (?token=...)\n", "text/plain", send_body)
        elif self.headers.get("Host", "") not in self._loopback_hosts(board.port):
            return self._reply(HTTPStatus.FORBIDDEN, b"unexpected Host header\n", "text/plain",
                               send_body)
        if url.path == "/api/state":
            body = board.snapshot_json(query.get("sel", [""])[0])
            return self._reply(HTTPStatus.OK, body, "application/json", send_body)
        return self._reply(HTTPStatus.OK, (STATIC / "index.html").read_bytes(), FILES["index.html"],
                           send_body)

    @staticmethod
    def _loopback_hosts(port):
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def _reply(self, status, body, content_type, send_body=True, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)
