"""The control socket: one JSON request per line in, one JSON response per line out.

Protocol version 1.  A request is {"v": 1, "cmd": NAME, ...arguments}; the
response is {"v": 1, "ok": true, "result": ...} or {"v": 1, "ok": false,
"error": TEXT}.  The socket is a Unix stream socket, mode 0600, owned by the
user running the router (root), so only that user can read or steer it.
Each connection carries one request.
"""
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Callable

VERSION = 1
MAX_REQUEST = 65536

log = logging.getLogger("tunrouter.control")


class ControlError(Exception):
    pass


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
        return fd in self._conns

    def readable(self, fd: int) -> bool:
        """Read from a client; answer once a full line is in.

        True when the exchange is over: the caller unregisters fd, then drop()s it.
        """
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
            self._answer(conn, bytes(pending).split(b"\n", 1)[0])
        return True

    def drop(self, fd: int) -> None:
        conn, _ = self._conns.pop(fd)
        conn.close()

    def _answer(self, conn: socket.socket, line: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            if req.get("v") != VERSION:
                raise ValueError(f"unsupported protocol version {req.get('v')!r}; this router speaks {VERSION}")
            handler = self.handlers.get(req.get("cmd"))
            if handler is None:
                raise ValueError(f"unknown command {req.get('cmd')!r}; known: {', '.join(sorted(self.handlers))}")
            resp = {"v": VERSION, "ok": True, "result": handler(req)}
        except (ValueError, KeyError, TypeError) as e:
            resp = {"v": VERSION, "ok": False, "error": str(e)}
        conn.setblocking(True)
        conn.settimeout(2.0)
        with contextlib.suppress(OSError):          # the client went away: its loss
            conn.sendall(json.dumps(resp).encode() + b"\n")

    def close(self) -> None:
        for fd in list(self._conns):
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


def request(path: str | Path, cmd: str, timeout: float = 5.0, **args) -> object:
    """Send one command to a router's control socket and return its result."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except FileNotFoundError:
            raise ControlError(f"{path}: no such control socket; is the router running?")
        except ConnectionRefusedError:
            raise ControlError(f"{path}: nobody listening; the router is not running")
        except PermissionError:
            raise ControlError(f"{path}: permission denied; the control socket is root-only")
        s.sendall(json.dumps({"v": VERSION, "cmd": cmd, **args}).encode() + b"\n")
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ControlError(f"{path}: the router closed the connection without answering")
    resp = json.loads(data)
    if not resp.get("ok"):
        raise ControlError(resp.get("error", "request failed"))
    return resp["result"]
