"""Headless Chromium over the DevTools protocol, for the dashboard's tests and benchmark (stdlib only).

``Chromium()`` starts ``chromium --headless`` with a throwaway profile and a DevTools port
chosen by the browser (read back from the profile's ``DevToolsActivePort`` file), connects to
its page over a minimal WebSocket client (RFC 6455: masked text frames out, fragmented
frames and pings in) and offers what the checks need: ``open(url)``, ``evaluate(js)``,
``wait_for(js)``, ``screenshot(path)``, ``metrics()`` (``Performance.getMetrics``: the
renderer's TaskDuration, ScriptDuration, ...), ``cpu_seconds()`` (user + system time of
every browser process, from /proc) and ``errors()`` (console errors, uncaught exceptions and
error log entries such as failed loads).

The binary is ``$EXMC_CHROMIUM`` or the first of chromium, chromium-browser, google-chrome
on the PATH (Debian: ``apt-get install chromium``); ``find_chromium()`` returns None when
there is none, and tests skip with that reason.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    override = os.environ.get("EXMC_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _WebSocket:
    """A blocking WebSocket client, just enough for the DevTools protocol."""

    def __init__(self, url: str, timeout: float):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout: float) -> str:
        self.sock.settimeout(timeout)
        parts = []
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)       # DevTools does not mask what it sends
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x1, 0x2, 0x0):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Chromium:
    """One headless Chromium with one page, driven over DevTools; ``close`` ends it."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 1000,
                 timeout: float = 60.0):
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no Chromium found (install Debian's chromium, or set EXMC_CHROMIUM)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="exmc-chromium-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")  # noqa: SIM115 -- open while it runs
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "about:blank"]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.next_id = 0
        self.events: list[dict] = []
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = _WebSocket(page["webSocketDebuggerUrl"], timeout)
            for domain in ("Page", "Runtime", "Log", "Performance"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}: "
                                   f"{(Path(self.profile) / 'chromium.log').read_text()[-2000:]}")
            if marker.exists():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, **params) -> dict:
        """Call a DevTools method and return its result; events met meanwhile are kept."""
        self.next_id += 1
        call = self.next_id
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method}")
            message = json.loads(self.ws.recv(left))
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message and len(self.events) < 10_000:
                self.events.append(message)

    def open(self, url: str):
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.2):
        """Evaluate until the value is truthy; returns it (TimeoutError with the last value)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"{expression!r} still {value!r} after {timeout} s")

    def screenshot(self, path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def metrics(self) -> dict:
        return {m["name"]: m["value"] for m in self.send("Performance.getMetrics")["metrics"]}

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        self.send("Runtime.evaluate", expression="0")     # collect the events queued by now
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                  for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append("exception: " + str(details.get("exception", {}).get("description")
                                               or details.get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        return out

    def requests(self) -> list[str]:
        """URLs the page asked for so far (needs ``send("Network.enable")`` first)."""
        self.send("Runtime.evaluate", expression="0")
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def clear_events(self):
        """Forget the events received so far (those already sent included)."""
        self.send("Runtime.evaluate", expression="0")
        self.events.clear()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the browser's process group (Linux /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        group = self.process.pid          # started in its own session: its own group
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:      # field 5 of stat: process group
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            except OSError:
                pass
            ws.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(5)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
