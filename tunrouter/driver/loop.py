"""The event loop: epoll over the devices and the control socket, one clock read per wakeup.

Reads are non-blocking and taken in batches of up to BATCH frames per device
per wakeup into one reused buffer; every frame the core returns is written
before the next read reuses that buffer.

busy_poll (seconds, 0: off): for that long after the last frame read, the
loop polls without sleeping, so the next frame is taken without a wakeup
(a process woken from sleep pays for it twice per round trip).  It spends a
core while it spins.
"""
import errno
import logging
import os
import select
import time

from tunrouter.core.port import Kind
from tunrouter.core.router import Router
from tunrouter.core.verdict import Drop
from tunrouter.driver import ctl_capture, ctl_trace
from tunrouter.driver.control import ControlServer
from tunrouter.wire import ether, vnet
from tunrouter.wire.gso import wire_count

BATCH = 64
BUFSIZE = 65536 + 64          # a 64 KiB datagram behind a virtio-net and an Ethernet header

log = logging.getLogger("tunrouter.loop")


class Loop:
    def __init__(self, router: Router, fds: list[int], control: ControlServer | None,
                 wakeup_fd: int | None = None, clock=time.monotonic, log_notice=log.warning,
                 log_sink=None, nflog_sink=None, busy_poll: float = 0.0):
        self.router = router
        self.fds = fds
        self.control = control
        self.wakeup_fd = wakeup_fd
        self.clock = clock
        self.log_notice = log_notice
        self.log_sink = log_sink
        self.nflog_sink = nflog_sink
        self.stopping = False
        self.busy_poll = busy_poll
        self._internal_logged = False
        self.taps = ctl_capture.Taps()
        self.on_reload = None             # set by the runner: called between batches
        # per port: frames start with a virtio-net header, which taps and byte counts leave out,
        # and the link header's length
        self.vnet = [p.offload for p in router.ports]
        self.l2len = [ether.HLEN if p.kind is Kind.TAP else 0 for p in router.ports]
        self._reload_pending = False

    def request_reload(self) -> None:
        """From a signal handler (SIGHUP): reload between batches, not inside one."""
        self._reload_pending = True

    def stop(self) -> None:
        self.stopping = True

    def run(self) -> None:
        router, fds, clock = self.router, self.fds, self.clock
        ep = select.epoll()
        port_of = {fd: i for i, fd in enumerate(fds)}
        for fd in fds:
            ep.register(fd, select.EPOLLIN)
        ctl = self.control
        if ctl is not None:
            ep.register(ctl.fileno(), select.EPOLLIN)
        if self.wakeup_fd is not None:
            ep.register(self.wakeup_fd, select.EPOLLIN)
        buf = bytearray(BUFSIZE)
        view = memoryview(buf)
        readv, process, write_all = os.readv, router.process, self._write_all
        bufs = [buf]
        now = last_frame = clock()
        try:
            while not self.stopping:
                if now - last_frame < self.busy_poll:
                    timeout = 0.0
                else:
                    timeout = min(max(router.next_deadline() - clock(), 0.0), 1.0)
                events = ep.poll(timeout)
                now = clock()
                process = router.process        # a trace subscriber may have changed it
                tapped = self.taps.ports
                for fd, _ev in events:
                    port = port_of.get(fd)
                    if port is not None:
                        for _ in range(BATCH):
                            try:
                                n = readv(fd, bufs)
                            except BlockingIOError:
                                break
                            except OSError as e:
                                self._port_gone(ep, fd, port, e, now)
                                break
                            last_frame = now
                            if tapped and port in tapped:
                                self.taps.copy(port, 0, view[vnet.HLEN if self.vnet[port] else 0:n])
                            try:
                                out = process(port, view[:n], now)
                            except Exception:
                                self._internal()
                                continue
                            if out:
                                write_all(out)
                    elif ctl is not None and fd == ctl.fileno():
                        conn = ctl.accept()
                        if conn is not None:
                            ep.register(conn.fileno(), select.EPOLLIN)
                    elif ctl is not None and ctl.owns(fd):
                        writing = ctl.writing(fd)
                        if ctl.writable(fd) if writing else ctl.readable(fd):
                            ep.unregister(fd)
                            ctl.drop(fd)
                        elif not writing and ctl.writing(fd):
                            ep.modify(fd, select.EPOLLOUT)    # an answer too big to send at once
                    elif fd == self.wakeup_fd:
                        os.read(fd, 512)
                if now >= router.next_deadline():
                    try:
                        write_all(router.tick(now))
                    except Exception:
                        self._internal()
                self._report(ep)
                if self._reload_pending and self.on_reload is not None:
                    self._reload_pending = False
                    self.on_reload()
        finally:
            ep.close()

    def _report(self, ep) -> None:
        """Hand what the core noted for people to the log and to event subscribers."""
        router, ctl = self.router, self.control
        if router.notices:
            for text in router.notices:
                self.log_notice(text)
            router.notices.clear()
        self.drain_logs()
        events = router.conntrack.drain_events()
        dropped = []
        if events and ctl is not None and ctl.subscribed("ct_events"):
            dropped += ctl.publish("ct_events", events)
        expect_events = router.conntrack.expects.drain_events()
        if expect_events and ctl is not None and ctl.subscribed("ct_expect_events"):
            dropped += ctl.publish("ct_expect_events", expect_events)
        if ctl is not None:
            dropped += ctl_trace.sync(router, ctl)
            dropped += self.taps.sync(ctl)
        for fd in dropped:
            ep.unregister(fd)
            ctl.drop(fd)

    def drain_logs(self) -> None:
        """Write the LOG lines and NFLOG captures the rules made since the last pass."""
        engine = self.router.rules
        if engine is None:
            return
        if engine.logs:
            if self.log_sink is not None:
                self.log_sink.write(engine.logs)
            engine.logs.clear()
        if engine.nflogs:
            if self.nflog_sink is not None:
                self.nflog_sink.write(engine.nflogs)
            engine.nflogs.clear()

    def _write_all(self, out: list) -> None:
        """Write each (port, frame); a frame the device refuses is counted, not fatal."""
        c = self.router.counters
        fds, write = self.fds, os.write
        tapped = self.taps.ports
        offloads = self.vnet
        for port, frame in out:
            if tapped and port in tapped:
                self.taps.copy(port, 1, frame[vnet.HLEN:] if offloads[port] else frame)
            try:
                write(fds[port], frame)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.EINVAL, errno.EMSGSIZE,
                                   errno.EBADFD):
                    raise
                c.drops[Drop.WRITE_FAILED] += 1
                continue
            if not offloads[port]:
                c.tx_packets[port] += 1
                c.tx_bytes[port] += len(frame)
            elif frame[1]:                    # a super-segment: count the segments it becomes
                l2len = self.l2len[port]
                packets, size = wire_count(memoryview(frame)[vnet.HLEN + l2len:],
                                           vnet.unpack(frame)[3])
                c.tx_packets[port] += packets
                c.tx_bytes[port] += size + packets * l2len
            else:
                c.tx_packets[port] += 1
                c.tx_bytes[port] += len(frame) - vnet.HLEN

    def _port_gone(self, ep, fd: int, port: int, e: OSError, now: float) -> None:
        """The device behind port was deleted (the fd reads EBADFD): stop reading it, and
        let the router forget the port; the router goes on with the others."""
        ep.unregister(fd)
        killed = self.router.port_down(port, now)
        self.log_notice(f"port {self.router.ports[port].name}: device gone ({e.strerror}); "
                        f"its routes removed, {killed} masqueraded connection(s) dropped")

    def _internal(self) -> None:
        self.router.counters.drops[Drop.INTERNAL] += 1
        if not self._internal_logged:
            self._internal_logged = True
            log.exception("internal error while processing a packet (counted as 'internal'; "
                          "logged once)")
