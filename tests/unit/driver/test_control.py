"""The control socket protocol, served without the event loop (no root needed)."""
import select
import stat
import threading

import pytest

from tunrouter.driver.control import ControlError, ControlServer, Subscription, request, subscribe


def serve_until(server: ControlServer, done: threading.Event, on_idle=None) -> None:
    """A minimal stand-in for the router loop: accept, read, answer."""
    ep = select.epoll()
    ep.register(server.fileno(), select.EPOLLIN)
    while not done.is_set():
        for fd, _ in ep.poll(0.05):
            if fd == server.fileno():
                conn = server.accept()
                if conn is not None:
                    ep.register(conn.fileno(), select.EPOLLIN)
            elif server.owns(fd) and server.readable(fd):
                ep.unregister(fd)
                server.drop(fd)
        if on_idle is not None:
            on_idle()
    ep.close()


@pytest.fixture
def server(tmp_path):
    """The server and a function that starts serving it in a thread, stopped before close."""
    srv = ControlServer(tmp_path / "r.sock", {"echo": lambda req: req["x"]})
    done = threading.Event()
    threads = []

    def start(on_idle=None):
        t = threading.Thread(target=serve_until, args=(srv, done, on_idle), daemon=True)
        t.start()
        threads.append(t)

    yield srv, start
    done.set()
    for t in threads:
        t.join(5)
    srv.close()


def test_socket_is_private(server):
    srv, _ = server
    assert stat.S_IMODE(srv.path.stat().st_mode) == 0o600


def test_request_and_errors(server):
    srv, start = server
    start()
    assert request(srv.path, "echo", x=[1, 2]) == [1, 2]
    with pytest.raises(ControlError, match="unknown command 'nope'; known: echo"):
        request(srv.path, "nope")


def test_a_second_server_on_a_live_socket_is_refused(server):
    srv, start = server
    start()
    with pytest.raises(ControlError, match="another router is listening"):
        ControlServer(srv.path, {})


def test_stale_socket_file_is_replaced(tmp_path):
    srv = ControlServer(tmp_path / "s.sock", {})
    srv.sock.close()                                  # a crashed router's leftover
    again = ControlServer(tmp_path / "s.sock", {})
    again.close()


def test_missing_socket_is_a_clear_error(tmp_path):
    with pytest.raises(ControlError, match="no such control socket"):
        request(tmp_path / "none.sock", "ping")


def test_subscription_streams_what_its_filter_accepts(server):
    srv, start = server
    srv.handlers["watch"] = lambda req: Subscription("ticks", lambda n: n if n % 2 == 0 else None)
    dropped, published = [], threading.Event()

    def on_idle():
        if srv.subscribed("ticks") and not published.is_set():
            dropped.extend(srv.publish("ticks", [1, 2, 3, 4]))
            published.set()

    start(on_idle)
    stream = subscribe(srv.path, "watch")
    assert [next(stream), next(stream)] == [2, 4]
    assert published.wait(5) and dropped == []            # nobody was cut off
    stream.close()
