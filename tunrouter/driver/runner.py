"""`tunrouter run`: check, open the devices, serve until SIGINT/SIGTERM, close everything."""
import gc
import logging
import os
import signal
import socket
import time

from tunrouter import __version__
from tunrouter.config import RouterConfig, build_router
from tunrouter.driver import devices as devmod
from tunrouter.driver.alarm import HelperAlarm
from tunrouter.driver.control import ControlServer
from tunrouter.driver.ctl_capture import capture_handlers
from tunrouter.driver.ctl_conntrack import conntrack_handlers
from tunrouter.driver.ctl_helpers import helper_state, helpers_handlers
from tunrouter.driver.ctl_rules import rules_handlers
from tunrouter.driver import metrics
from tunrouter.driver.ctl_top import top_handlers
from tunrouter.driver.reload import ReloadError, reload
from tunrouter.driver.ctl_trace import trace_handlers
from tunrouter.driver.logsink import LogSink
from tunrouter.driver.loop import Loop
from tunrouter.driver.nflogsink import NflogSink

log = logging.getLogger("tunrouter")


def serve(cfg: RouterConfig) -> None:
    """Run the router described by cfg in the foreground.

    Order matters for "loses nothing": everything checkable is checked
    (config, root, namespaces, device names, the control socket) before the
    first device exists, and every device is closed, so removed, on the way out.
    """
    router = build_router(cfg)
    devmod.preflight(cfg)
    control = ControlServer(cfg.control, {})
    try:
        devices = devmod.open_devices(cfg)
    except BaseException:
        control.close()
        raise
    for d in devices:
        i = d.iface
        log.info("port %s: %s device %s in namespace %s, address %s/%d, mtu %d",
                 i.name, i.kind.value, i.device, i.netns, ".".join(map(str, i.address)),
                 i.prefixlen, i.mtu)
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    sink = LogSink(cfg.log.file, cfg.log.format, cfg.name)
    nflog = NflogSink(cfg.nflog_dir)
    loop = Loop(router, [d.fd for d in devices], control, rsock.fileno(), log_notice=_notice_log(),
                log_sink=sink, nflog_sink=nflog, busy_poll=cfg.busy_poll_us / 1e6)
    names = [i.name for i in cfg.interfaces]

    def stats(_req=None) -> dict:
        return {**router.counters.snapshot(names),
                "reassembly": router.defrag.snapshot(),
                "conntrack": {"entries": router.conntrack.count(),
                              "max": router.conntrack.settings.max},
                "rules": {"loaded": router.rules is not None,
                          "hotdrops": router.rules.hotdrops if router.rules else 0,
                          "log_written": sink.written, "log_lost": sink.lost,
                          "nflog_written": nflog.written, "nflog_lost": nflog.lost},
                "helpers": helper_state(router)}

    current = [cfg]

    def do_reload(_req=None) -> dict:
        """SIGHUP or `tunrouter reload`: the file again, all or nothing (ReloadError says why)."""
        new = reload(router, current[0])
        current[0] = new
        loop.busy_poll = new.busy_poll_us / 1e6
        rules = str(new.rules.path) if new.rules is not None else None
        log.info("reloaded %s (rules: %s)", new.path, rules or "none")
        return {"reloaded": str(new.path), "rules": rules}

    def on_hup() -> None:
        try:
            do_reload()
        except ReloadError as e:
            log.error("reload refused: %s", e)

    loop.on_reload = on_hup
    control.handlers.update({
        "ping": lambda req: {"router": cfg.name, "version": __version__, "pid": os.getpid()},
        "stats": stats,
        "reload": do_reload,
        "routes": lambda req: [_route_row(router, r) for r in router.fib.routes()],
        "neighbours": lambda req: [_neigh_row(router, n) for n in router.neigh.entries()],
        **conntrack_handlers(router.conntrack, time.monotonic),
        **rules_handlers(router, loop.drain_logs),
        **helpers_handlers(router),
        **trace_handlers(router),
        **capture_handlers(router),
        **top_handlers(router, names),
    })

    def on_signal(signum, _frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        loop.stop()

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    old_handlers[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: loop.request_reload())
    endpoint = metrics.serve(cfg.metrics, stats) if cfg.metrics is not None else None
    if endpoint is not None:
        log.info("metrics on http://%s:%d/metrics", *cfg.metrics)
    old_wakeup = signal.set_wakeup_fd(wsock.fileno())
    # the helpers' time budget: SIGALRM around each help() (disarmed on every way out)
    alarm = HelperAlarm().install(router.guard)
    # Everything made so far (pyroute2, config, tables) lives as long as the
    # process: keep it out of the cyclic collector's full passes, which would
    # otherwise walk it every few tens of thousands of packets.
    gc.freeze()
    log.info("router %s up: %d ports, control socket %s", cfg.name, len(devices), cfg.control)
    try:
        loop.run()
    finally:
        alarm.close()
        if endpoint is not None:
            endpoint.shutdown()
        signal.set_wakeup_fd(old_wakeup)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        for d in devices:
            d.close()
        control.close()
        loop.drain_logs()                 # what the last packets logged
        sink.close()
        nflog.close()
        rsock.close()
        wsock.close()
        log.info("router %s down: devices removed", cfg.name)


def _route_row(router, r) -> dict:
    net = r.prefix.to_bytes(4, "big")
    return {"dst": "%d.%d.%d.%d/%d" % (*net, r.prefixlen),
            "via": "%d.%d.%d.%d" % tuple(r.next_hop) if r.next_hop else None,
            "port": router.ports[r.port].name, "connected": r.connected}


def _neigh_row(router, n) -> dict:
    return {"port": router.ports[n.port].name, "ip": "%d.%d.%d.%d" % tuple(n.ip),
            "mac": ":".join("%02x" % b for b in n.mac) if n.mac else None,
            "state": n.state.value, "queued": len(n.queue)}


def _notice_log():
    """Log the core's notices like the kernel's net_ratelimit(): 10 at once, then 1 per 0.5 s."""
    from tunrouter.core.ratelimit import TokenBucket

    bucket = TokenBucket(rate=2.0, burst=10.0, tokens=10.0, last=time.monotonic())
    suppressed = 0

    def notice(text: str) -> None:
        nonlocal suppressed
        if bucket.allow(time.monotonic()):
            if suppressed:
                log.warning("%d notices suppressed by the rate limit", suppressed)
                suppressed = 0
            log.warning("%s", text)
        else:
            suppressed += 1
    return notice
