"""The control socket: one JSON request per line in, one JSON response per line out.

Protocol version 1.  A request is {"v": 1, "cmd": NAME, ...arguments}; the
response is {"v": 1, "ok": true, "result": ...} or {"v": 1, "ok": false,
"error": TEXT}.  The socket is a Unix stream socket, mode 0600, owned by the
user running the router (root), so only that user can read or steer it.
Each connection carries one request.  An answer the client does not take in at
once is sent as it reads (writable()); the router never waits for a client.

A handler may answer with a Subscription instead of a result: the response
is then {"v": 1, "ok": true, "result": {"stream": TOPIC}} and the connection
stays open; every item the router publishes on TOPIC and the subscription
accepts follows as one JSON line {"item": ...}, until the client closes.  A
client that does not read fast enough is sent {"error": "overrun: ..."} and
dropped, as a netlink listener gets ENOBUFS; the router never waits for it.
"""
import contextlib
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Callable, Iterator

VERSION = 1
MAX_REQUEST = 16 << 20          # a whole ruleset travels in one iptables-restore request

log = logging.getLogger("tunrouter.control")


STREAM_SNDBUF = 4 << 20


class ControlError(Exception):
    pass


class Subscription:
    """A handler's answer that keeps its connection open for items published on topic.

    render(item) returns what to send for one item (any JSON value), or None
    to skip it (the client's filter).
    """

    def __init__(self, topic: str, render: Callable[[object], object]):
        self.topic = topic
        self.render = render


class ControlServer:
    """Non-blocking listener serviced from the router's event loop."""

    def __init__(self, path: Path, handlers: dict[str, Callable[[dict], object]]):
        self.path = Path(path)
        self.handlers = handlers
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if self.path.exists():
            if _answers(self.path):
                raise ControlError(f"{self.path}: another router is listening on this control socket")
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self._conns: dict[int, tuple[socket.socket, bytearray]] = {}
        self._streams: dict[int, tuple[socket.socket, Subscription]] = {}
        self._out: dict[int, memoryview] = {}       # answers the client has not taken in yet

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket | None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return None
        conn.setblocking(False)
        self._conns[conn.fileno()] = (conn, bytearray())
        return conn

    def owns(self, fd: int) -> bool:
        return fd in self._conns or fd in self._streams

    def subscribed(self, topic: str) -> bool:
        return any(sub.topic == topic for _, sub in self._streams.values())

    def subscriptions(self, topic: str) -> list[Subscription]:
        """The live subscriptions to topic."""
        return [sub for _, sub in self._streams.values() if sub.topic == topic]

    def publish(self, topic: str, items: list) -> list[int]:
        """Send items to the subscribers of topic; return the fds of those dropped."""
        dropped = []
        for fd, (conn, sub) in self._streams.items():
            if sub.topic != topic:
                continue
            lines = []
            for item in items:
                out = sub.render(item)
                if out is not None:
                    lines.append(json.dumps({"item": out}).encode() + b"\n")
            if not lines:
                continue
            try:
                data = b"".join(lines)
                if conn.send(data) != len(data):
                    raise BlockingIOError
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    conn.send(b'{"error": "overrun: the client did not keep up; items were lost"}\n')
                dropped.append(fd)
            except OSError:
                dropped.append(fd)
        return dropped

    def readable(self, fd: int) -> bool:
        """Read from a client; answer once a full line is in.

        True when the exchange is over: the caller unregisters fd, then drop()s it.
        """
        if fd in self._streams:
            conn, _ = self._streams[fd]
            try:
                return not conn.recv(4096)           # a subscriber only ever closes
            except BlockingIOError:
                return False
            except OSError:
                return True
        conn, pending = self._conns[fd]
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if chunk:
            pending += chunk
            if b"\n" not in pending and len(pending) < MAX_REQUEST:
                return False
            sub = self._answer(conn, bytes(pending).split(b"\n", 1)[0])
            if fd in self._out:
                return False                         # the rest when it can take it: writable()
            if sub is not None:
                del self._conns[fd]
                conn.setblocking(False)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
                self._streams[fd] = (conn, sub)
                return False
        return True

    def writing(self, fd: int) -> bool:
        """fd has an answer only partly sent: the caller waits for it to be writable."""
        return fd in self._out

    def writable(self, fd: int) -> bool:
        """Send more of fd's answer; True when the exchange is over (all sent, or the client
        went away): the caller unregisters fd, then drop()s it."""
        conn, _ = self._conns[fd]
        data = self._out[fd]
        try:
            n = conn.send(data)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if n == len(data):
            return True
        self._out[fd] = data[n:]
        return False

    def drop(self, fd: int) -> None:
        self._out.pop(fd, None)
        conn, _ = self._conns.pop(fd, None) or self._streams.pop(fd)
        conn.close()

    def _answer(self, conn: socket.socket, line: bytes) -> Subscription | None:
        """Answer one request; return the Subscription when it opened a stream."""
        sub = req = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            if req.get("v") != VERSION:
                raise ValueError(f"unsupported protocol version {req.get('v')!r}; this router speaks {VERSION}")
            # The requesting process, as ctnetlink knows it (`[USERSPACE] portid=`).
            pid, _uid, _gid = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            req["peer_pid"] = pid
            handler = self.handlers.get(req.get("cmd"))
            if handler is None:
                raise ValueError(f"unknown command {req.get('cmd')!r}; known: {', '.join(sorted(self.handlers))}")
            result = handler(req)
            if isinstance(result, Subscription):
                sub, result = result, {"stream": result.topic}
            resp = {"v": VERSION, "ok": True, "result": result}
        except (ValueError, KeyError, TypeError) as e:
            resp = {"v": VERSION, "ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - a failing command must not stop the router
            log.exception("control command %r failed", req.get("cmd") if isinstance(req, dict) else req)
            resp = {"v": VERSION, "ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
        data = json.dumps(resp).encode() + b"\n"
        if sub is None:
            # Never wait on a client that does not read (a big answer, a client that
            # stopped): what the socket does not take now waits for writable().
            try:
                n = conn.send(data)
            except BlockingIOError:
                n = 0
            except OSError:                         # the client went away: its loss
                return None
            if n < len(data):
                self._out[conn.fileno()] = memoryview(data)[n:]
            return None
        conn.setblocking(True)                      # a stream's first line: a few bytes
        conn.settimeout(2.0)
        try:
            conn.sendall(data)
        except OSError:                             # the client went away: its loss
            return None
        return sub

    def close(self) -> None:
        for fd in [*self._conns, *self._streams]:
            self.drop(fd)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _connect(path: str | Path, timeout: float | None) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except FileNotFoundError:
        s.close()
        raise ControlError(f"{path}: no such control socket; is the router running?")
    except ConnectionRefusedError:
        s.close()
        raise ControlError(f"{path}: nobody listening; the router is not running")
    except PermissionError:
        s.close()
        raise ControlError(f"{path}: permission denied; the control socket is root-only")
    return s


def _result(path, line: bytes) -> object:
    if not line:
        raise ControlError(f"{path}: the router closed the connection without answering")
    resp = json.loads(line)
    if not resp.get("ok"):
        raise ControlError(resp.get("error", "request failed"))
    return resp["result"]


def request(path: str | Path, cmd: str, timeout: float = 5.0, **args) -> object:
    """Send one command to a router's control socket and return its result."""
    with _connect(path, timeout) as s:
        s.sendall(json.dumps({"v": VERSION, "cmd": cmd, **args}).encode() + b"\n")
        with s.makefile("rb") as f:
            return _result(path, f.readline())


def subscribe(path: str | Path, cmd: str, **args) -> Iterator[object]:
    """Send a streaming command; yield each item the router publishes, until it closes."""
    with _connect(path, 5.0) as s:
        s.sendall(json.dumps({"v": VERSION, "cmd": cmd, **args}).encode() + b"\n")
        with s.makefile("rb") as f:
            _result(path, f.readline())
            s.settimeout(None)
            for line in f:
                msg = json.loads(line)
                if "error" in msg:
                    raise ControlError(f"{path}: {msg['error']}")
                yield msg["item"]
