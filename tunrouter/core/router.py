"""Router: the packet path, pure.  No file descriptors, no clock, no namespaces.

The driver calls process() once per frame read and tick() when next_deadline()
has passed.  Both return the frames to write as (port index, bytes-like).
The frame is lent for the duration of process(): the router may rewrite it in
place (TTL) and returns views into it, which the driver writes before it
reads the next frame; anything kept longer (the ARP queue) is copied.

process() reads top to bottom in the order of the kernel's receive path:
link layer, ip_rcv_core() checks, reassembly (nf_defrag_ipv4), connection
tracking (nf_conntrack_in), local or forward (ip_route_input), TTL, MTU,
conntrack confirm, neighbour output.  Packets the router makes itself take
the OUTPUT path: tracked, confirmed, routed.

The rule hooks sit where netfilter's do (priorities of enum nf_ip_hook_priorities):
raw PREROUTING (-300) before conntrack (-200), nat PREROUTING (-100, first
packet of a connection only), routing, then filter INPUT (0) and nat INPUT
(100) for local packets, or, after ip_forward()'s TTL and MTU checks and the
TTL decrement, filter FORWARD (0) and nat POSTROUTING (100); conntrack
confirm (INT_MAX) last.  Router-made packets: raw OUTPUT, conntrack, nat
OUTPUT, filter OUTPUT, nat POSTROUTING, confirm.  A hook whose table has no
chain for it costs one attribute test; a Ctx is built only for a hook that
has rules, once per packet, and updated between hooks.

NAT (tunrouter.nat) runs at the nat hooks: destination at PREROUTING and
OUTPUT, source at POSTROUTING and INPUT.  On a connection's first packet the
nat chain decides the binding (no matching rule: the null binding, which
still moves a source port that would clash); every packet of a translated
connection, both ways, is then rewritten from the connection, and ICMP
errors about it get their quoted header translated too.  Routing follows
PREROUTING, so it sees the translated destination.
"""
import random
from dataclasses import dataclass

from tunrouter.conntrack.conn import (
    CTSTATE,
    IPS_CONFIRMED,
    IPS_EXPECTED,
    IPS_NAT_MASK,
    IPS_SEQ_ADJUST,
    CtInfo,
    Help,
)
from tunrouter.conntrack.expect import BUSY, Expectation
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import ConnTable
from tunrouter.core import defrag
from tunrouter.core import offload
from tunrouter.core.desc import CHECKSUM_NONE, CHECKSUM_PARTIAL, PacketDesc, parse
from tunrouter.core.fib import Fib, Route
from tunrouter.core.hooks import ConnView
from tunrouter.core.neigh import NeighbourTable
from tunrouter.core.port import Kind, PortSpec
from tunrouter.core.ratelimit import IcmpLimiter
from tunrouter.core.verdict import Counters, Drop
from tunrouter.helpers import HelperSettings
from tunrouter.helpers.base import Packet
from tunrouter.helpers.guard import FAULT, Guard
from tunrouter.helpers.mangle import mangle
from tunrouter.helpers.registry import BUILTIN
from tunrouter.helpers.seqadj import seq_adjust, seqadj_set
from tunrouter.nat.binding import Binder
from tunrouter.nat.range import (
    DST,
    LOOPBACK,
    MAP_IPS,
    NAT_TARGETS,
    PROTO_SPECIFIED,
    SRC,
    NatRange,
    for_target,
)
from tunrouter.nat.rewrite import NAT_BIT as _NAT_BIT
from tunrouter.nat.rewrite import apply as apply_plan
from tunrouter.nat.rewrite import icmp_reply_translation, make_plans, nat_packet
from tunrouter.rules import ACCEPT, DROP, FILTER, NAT, RAW, AddrTypes, Ctx, Hook, Reject
from tunrouter.rules.targets import Masquerade
from tunrouter.wire import arp, ether, icmp, ipv4, tcp, vnet
from tunrouter.wire.fragment import fragment
from tunrouter.wire.gso import wire_count
from tunrouter.wire.l4 import l4_csum

# RFC 1812 §4.3.2.3 and the kernel's icmp_send(): an error quotes as much of
# the offending datagram as fits in a 576-byte reply.
ICMP_ERROR_MAX = 576
ICMP_TTL = 64            # net.ipv4.ip_default_ttl
TOS_PREC_INTERNETCONTROL = 0xC0
TOS_MASK = 0x1E
_FRAGMENTED = ipv4.FLAG_MF | ipv4.OFFSET_MASK
_DEFRAG_DROPS = {label: Drop[label.upper().replace("-", "_")] for label in defrag.REASONS}


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A configured route: prefix/len via a gateway, or out of a port directly."""
    prefix: bytes
    prefixlen: int
    via: bytes | None = None
    port: int | None = None


# By first octet.  RFC 1812 §5.3.7 and ip_route_input_slow(): no router forwards
# from 0/8, 127/8, multicast or class E, nor to 0/8 or 127/8.
_MARTIAN_SRC = bytes(o == 0 or o == 127 or o >= 224 for o in range(256))
_MARTIAN_DST = bytes(o == 0 or o == 127 for o in range(256))
FORWARD_CACHE_MAX = 65536     # destinations; cleared whole when full, rebuilt on demand


_NEW = CtInfo.NEW
_ESTABLISHED = CtInfo.ESTABLISHED
_ESTABLISHED_REPLY = CtInfo.ESTABLISHED_REPLY
_RELATED = CtInfo.RELATED
_RELATED_REPLY = CtInfo.RELATED_REPLY
_NAT_DONE = (1 << 7, 1 << 8)        # IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE by manip
# status & _SETTLED == IPS_CONFIRMED (and no masquerade): a connection past its first
# packet and untranslated, whose NEW and RELATED packets the nat hooks leave as they are
_SETTLED = IPS_CONFIRMED | IPS_NAT_MASK
_CT_DROP = CtInfo.DROP
_UNTRACKED = CtInfo.UNTRACKED
_INVALID = CtInfo.INVALID
_PRE, _IN, _FWD, _OUT, _POST = (Hook.PREROUTING, Hook.INPUT, Hook.FORWARD, Hook.OUTPUT,
                                Hook.POSTROUTING)


class Router:
    """One router: ports, routes, the connection table, reassembly.

    conntrack: the nf_conntrack_* sysctls (Settings); ipfrag: Defrag()'s arguments.
    notices: lines for the operator (e.g. "nf_conntrack: table full, dropping
    packet") that the driver logs, rate-limited, and empties.
    nat_rng: the source of NAT's random port offsets (tests seed one).
    helpers: the conntrack helpers CT --helper may name, by name (default: the
    built-in ones); helper_settings: auto-assignment by port, fault handling.
    """

    def __init__(self, ports: list[PortSpec], routes: list[StaticRoute] = (), *,
                 conntrack: Settings | None = None, ipfrag: dict | None = None,
                 nat_rng: random.Random | None = None, helpers: dict | None = None,
                 helper_settings: HelperSettings | None = None):
        self.ports = ports
        self.counters = Counters(len(ports))
        self.fib = Fib()
        self.local = {p.address: p.index for p in ports}
        self._port_addr = [int.from_bytes(p.address, "big") for p in ports]
        self.broadcasts = {p.broadcast for p in ports} | {b"\xff\xff\xff\xff"}
        self._forwardable: dict[bytes, Route] = {}
        for p in ports:
            self.fib.add(Route(p.network, p.prefixlen, p.index, None, connected=True))
        for r in routes:
            self.add_route(r)
        self.neigh = NeighbourTable({p.index: p.mac for p in ports if p.kind is Kind.TAP},
                                    {p.index: p.address for p in ports},
                                    {p.index: vnet.NONE for p in ports if p.offload})
        self.icmp_limit = IcmpLimiter()
        self.defrag = defrag.Defrag(**(ipfrag or {}))
        self.conntrack = ConnTable(conntrack or Settings())
        self.binder = Binder(self.conntrack, nat_rng)
        self.notices: list[str] = []
        hs = self.helper_settings = helper_settings or HelperSettings()
        self.helpers = helpers if helpers is not None else {n: c() for n, c in BUILTIN.items()}
        self.guard = Guard(self.notices, hs.on_fault, hs.max_faults, hs.window, hs.budget)
        self._auto_assign()
        self._ident = 0
        self._tap = [p.kind is Kind.TAP for p in ports]
        self._vnet = [p.offload for p in ports]
        self._mtu = [p.mtu for p in ports]
        self._names = [p.name for p in ports]
        self._addrtypes = AddrTypes([(p.name, int.from_bytes(p.address, "big"), p.prefixlen)
                                     for p in ports])
        self._connview = ConnView(self.conntrack)
        self.tracer = None
        self._trace = None                # the current traced packet's event list
        self.set_rules(None)

    def set_rules(self, engine) -> None:
        """Run engine (a rules.Engine, or None for no rules) from the next packet on.

        Per hook, the engine when its table has a chain there, else None, so
        the packet path tests one attribute per hook.  Conntrack state is not
        touched: a reload keeps every connection.
        """
        self.rules = engine

        def at(table, hook):
            if engine is None or engine.chain_at(table, hook) is None:
                return None
            return engine

        def count_only(table, hook):
            """An empty built-in chain with policy ACCEPT: only its policy counters move."""
            chain = None if engine is None else engine.chain_at(table, hook)
            if chain is not None and not chain.rules and chain.policy is ACCEPT:
                return chain
            return None
        # The busiest hooks skip the engine (and the Ctx) for an empty ACCEPT chain.
        self._raw_pre_count = count_only(RAW, _PRE)
        self._fwd_count = count_only(FILTER, _FWD)
        self._raw_pre = None if self._raw_pre_count is not None else at(RAW, _PRE)
        self._nat_pre = at(NAT, _PRE)
        self._filter_in = at(FILTER, _IN)
        self._nat_in = at(NAT, _IN)
        self._filter_fwd = None if self._fwd_count is not None else at(FILTER, _FWD)
        # FORWARD's first rule accepts ESTABLISHED: count those without a Ctx
        self._fwd_est = None if self._filter_fwd is None else engine.established_accept(FILTER, _FWD)
        self._nat_post = at(NAT, _POST)
        self._raw_out = at(RAW, _OUT)
        self._nat_out = at(NAT, _OUT)
        self._filter_out = at(FILTER, _OUT)

    def set_tracer(self, tracer) -> None:
        """Trace the packets tracer (a core.trace.Tracer) selects; None stops.

        While tracing, process() is this instance's _traced_process: the driver
        must look router.process up again after a change (it does per batch).
        """
        self.tracer = tracer
        if tracer is None:
            self.__dict__.pop("process", None)
        else:
            self.process = self._traced_process

    def _traced_process(self, in_port: int, frame: memoryview, now: float) -> list:
        """process(), with a trace for a packet the tracer's filter selects."""
        ip = frame[vnet.HLEN:] if self._vnet[in_port] else frame
        if self._tap[in_port]:
            if len(ip) < ether.HLEN or ip[ether.TYPE:ether.TYPE + 2] != b"\x08\x00":
                return Router.process(self, in_port, frame, now)
            ip = ip[ether.HLEN:]
        d = parse(ip, in_port)
        trace = None if type(d) is Drop else self.tracer.begin(d, in_port, now)
        if trace is None:
            return Router.process(self, in_port, frame, now)
        c = self.counters
        drops, forwarded, local = list(c.drops), c.forwarded, c.local
        # every rule shows in the trace: no shortcut past FORWARD's first rule
        fwd_est, self._fwd_est = self._fwd_est, None
        self._trace = trace.events
        try:
            out = Router.process(self, in_port, frame, now)
        finally:
            self._trace = None
            self._fwd_est = fwd_est
        trace.outcome = [Drop(i).label for i, (a, b) in enumerate(zip(drops, c.drops)) if b > a]
        if c.forwarded > forwarded:
            trace.outcome.insert(0, "forwarded")
        if c.local > local:
            trace.outcome.insert(0, "local")
        trace.out = [(port, bytes(f)) for port, f in out]
        trace.after = bytes(ip[:len(trace.packet)])
        self.tracer.finish(trace)
        return out

    def add_route(self, r: StaticRoute) -> None:
        """Install a static route; its gateway must be on a connected network."""
        self._forwardable.clear()
        prefix = int.from_bytes(r.prefix, "big")
        mask = (0xFFFFFFFF << (32 - r.prefixlen)) & 0xFFFFFFFF
        if r.via is not None:
            gw = self.fib.resolve(r.via, r.via)
            if gw is None:
                raise ValueError(f"gateway {ipv4.ntoa(r.via)} is not on a connected network")
            if r.port is not None and r.port != gw.port:
                raise ValueError(f"gateway {ipv4.ntoa(r.via)} is not on port {self.ports[r.port].name}")
            self.fib.add(Route(prefix & mask, r.prefixlen, gw.port, r.via))
        elif r.port is not None:
            self.fib.add(Route(prefix & mask, r.prefixlen, r.port, None))
        else:
            raise ValueError("a static route needs a gateway or a port")

    # -- the packet path ------------------------------------------------------

    def process(self, in_port: int, frame: memoryview, now: float) -> list:
        """Handle one frame from in_port; return [(port, frame), ...] to write."""
        c = self.counters
        c.rx_packets[in_port] += 1
        # vhdr: the frame's virtio-net header; vframe: the whole TUN frame, whose header
        # is reused in place when the packet leaves by another offloading TUN port
        vhdr = vframe = None
        if self._vnet[in_port]:
            if len(frame) < vnet.HLEN:
                return self._drop(Drop.SHORT)
            vhdr = frame[:vnet.HLEN]
            vframe = frame
            frame = frame[vnet.HLEN:]
        c.rx_bytes[in_port] += len(frame)
        l2_broadcast = False
        l2 = None
        if self._tap[in_port]:
            if len(frame) < ether.HLEN:
                return self._drop(Drop.SHORT)
            etype = (frame[ether.TYPE] << 8) | frame[ether.TYPE + 1]
            if etype == ether.ETH_P_ARP:
                return self._arp(in_port, frame[ether.HLEN:], now)
            if etype != ether.ETH_P_IP:
                return self._drop(Drop.NOT_IPV4)
            if frame[ether.DST:ether.DST + 6] != self.ports[in_port].mac:
                if not frame[ether.DST] & 1:
                    return self._drop(Drop.OTHER_HOST)
                l2_broadcast = True
            l2 = frame
            frame = frame[ether.HLEN:]
            vframe = None
        d = parse(frame, in_port)
        if type(d) is Drop:
            return self._drop(d)
        if vhdr is not None and (vhdr[0] or vhdr[1]):
            l2len = 0 if l2 is None else ether.HLEN
            bad = offload.take(d, vhdr, l2len)
            if bad is not None:
                return self._drop(bad)
            if d.gso is not None:
                segs, size = wire_count(d.buf, d.gso[1])
                c.rx_packets[in_port] += segs - 1
                c.rx_bytes[in_port] += size - len(d.buf) + (segs - 1) * l2len
        frag_max = 0
        if d.frag & _FRAGMENTED:
            whole = self.defrag.push(d, now)
            if whole is None:
                return []
            if type(whole) is str:
                return self._drop(_DEFRAG_DROPS[whole])
            d = parse(memoryview(whole.packet), in_port)
            frag_max = whole.frag_max_size
        ctx = None
        if self._raw_pre is not None:
            ctx = self._ctx(d, _INVALID, None, in_port, "", l2, now)
            v = self.rules.run(RAW, _PRE, ctx)
            if v is not ACCEPT:
                return self._verdict(v, d, now)
            if ctx.notrack:
                ct, ctinfo = None, _UNTRACKED
            else:
                ct, ctinfo = self.conntrack.track(d, now)
        else:
            if self._raw_pre_count is not None:
                self._raw_pre_count.packets += 1
                self._raw_pre_count.bytes += len(d.buf)
            ct, ctinfo = self.conntrack.track(d, now)
        if self._trace is not None:
            self._trace.append(("conntrack", CTSTATE[ctinfo]))
        if ct is not None and ct.acct is not None:
            self._account(d, ct, ctinfo)
        if ctinfo is _CT_DROP:
            return self._ct_drop()
        if ctinfo is _NEW and ct.help is None and not ct.status & IPS_CONFIRMED:
            self._attach_helper(ct, ctx, now)
        if ct is not None:
            if ctinfo is _ESTABLISHED or ctinfo is _ESTABLISHED_REPLY:
                # the fast path of _nat(): translate by the bits, nothing to decide
                if ct.status & IPS_NAT_MASK:
                    plans = ct.nat_plans
                    if plans is None:
                        plans = ct.nat_plans = make_plans(ct)
                    plan = plans[2 if ctinfo is _ESTABLISHED else 3]       # DST manip
                    if plan is not None:
                        d.dst = apply_plan(d.buf, plan, d.csum == CHECKSUM_PARTIAL)
                        if ctx is not None:
                            ctx.reread()
            elif ct.status & _SETTLED != IPS_CONFIRMED or ct.masq_port >= 0:
                done, ctx = self._nat(self._nat_pre, _PRE, DST, d, ct, ctinfo, ctx, in_port, "",
                                      l2, now)
                if done is not None:
                    return done
        dst = d.dst
        route = self._forwardable.get(dst)
        if route is None:
            route = self._classify(d, ct, ctinfo, l2_broadcast, now, l2, ctx)
            if type(route) is list:
                return route
        elif _MARTIAN_SRC[d.src[0]]:
            return self._drop(Drop.MARTIAN)
        elif l2_broadcast:
            return self._drop(Drop.L2_BROADCAST)
        if d.ttl <= 1:
            return self._error(d, Drop.TTL_EXCEEDED, icmp.TIME_EXCEEDED, icmp.EXC_TTL, 0, now,
                               (ct, ctinfo))
        buf = d.buf
        mtu = limit = self._mtu[route.port]
        # ip_exceeds_mtu(): a datagram reassembled here is judged by its largest
        # fragment, and leaves in pieces no larger (ip_do_fragment).
        if frag_max:
            too_big = frag_max > mtu
            limit = min(mtu, frag_max)
        elif d.gso is not None:
            too_big = not offload.segment_fits(d, mtu)
        else:
            too_big = len(buf) > mtu
        if too_big and d.frag & ipv4.FLAG_DF:
            return self._error(d, Drop.FRAG_NEEDED, icmp.DEST_UNREACH, icmp.FRAG_NEEDED, mtu, now,
                               (ct, ctinfo))
        # ip_forward(): the TTL is decremented before NF_INET_FORWARD, so
        # FORWARD's rules (LOG TTL=, -m ttl) see the new value.
        ipv4.dec_ttl(buf)
        if self._fwd_est is not None and (ctinfo is _ESTABLISHED or ctinfo is _ESTABLISHED_REPLY):
            self._fwd_est.packets += 1
            self._fwd_est.bytes += len(buf)
        elif self._filter_fwd is not None:
            d.ttl -= 1
            ctx = self._ctx_at(ctx, d, ctinfo, ct, in_port, self._names[route.port], l2, now)
            v = self.rules.run(FILTER, _FWD, ctx)
            if v is not ACCEPT:
                return self._verdict(v, d, now, related=(ct, ctinfo))
        elif self._fwd_count is not None:
            self._fwd_count.packets += 1
            self._fwd_count.bytes += len(buf)
        if ct is not None:
            if ctinfo is _ESTABLISHED or ctinfo is _ESTABLISHED_REPLY:
                if ct.status & IPS_NAT_MASK:
                    reply = ctinfo is _ESTABLISHED_REPLY
                    if ct.masq_port >= 0 and not reply and ct.masq_port != route.port:
                        return self._masq_moved(ct, now)
                    plan = ct.nat_plans[reply]                              # SRC manip
                    if plan is not None:
                        d.src = apply_plan(buf, plan, d.csum == CHECKSUM_PARTIAL)
            elif ct.status & _SETTLED != IPS_CONFIRMED or ct.masq_port >= 0:
                done, ctx = self._nat(self._nat_post, _POST, SRC, d, ct, ctinfo, ctx, in_port,
                                      self._names[route.port], l2, now, route.port)
                if done is not None:
                    return done
            if ct.help is not None or not ct.status & IPS_CONFIRMED:
                buf = self._confirm_point(d, ct, ctinfo, now)
                if type(buf) is list:
                    return buf
        c.forwarded += 1
        if d.gso is not None or d.csum == CHECKSUM_PARTIAL:
            return self._offloaded(route, dst, d, buf, limit, too_big, vframe, now)
        if len(buf) > limit:
            out = []
            for piece in fragment(buf, limit):
                c.fragments_out += 1
                self._send(route, dst, piece, now, out)
            return out
        if not self._tap[route.port]:
            if not self._vnet[route.port]:
                return [(route.port, buf)]
            if vframe is not None and buf.obj is vframe.obj:
                return [(route.port, vframe[:vnet.HLEN + len(buf)])]    # its header, in place
            return [(route.port, vnet.NONE + bytes(buf))]
        out = []
        self.neigh.resolve(route.port, route.next_hop or dst, buf, now, out, self._queue_full)
        return out

    def _offloaded(self, route: Route, dst: bytes, d: PacketDesc, buf, limit: int, too_big: bool,
                   vframe, now: float) -> list:
        """A forwarded packet with its checksum (and segmentation) left to a device: passed on
        whole by a port that offloads when one segment fits its MTU, else finished here."""
        port = route.port
        out = []
        if self._vnet[port] and not too_big and d.csum == CHECKSUM_PARTIAL:
            if not self._tap[port]:
                if vframe is not None and buf.obj is vframe.obj:
                    return [(port, vframe[:vnet.HLEN + len(buf)])]
                return [(port, offload.header(d, buf) + bytes(buf))]
            n = self.neigh.ready(port, route.next_hop or dst, now, out)
            if n is not None:
                out.append((port, offload.header(d, buf, ether.HLEN) + n.eth + bytes(buf)))
                return out
            # the next hop is not resolved yet: what waits for it is queued complete
        for packet in offload.finish(d, buf):
            if len(packet) > limit:
                for piece in fragment(packet, limit):
                    self.counters.fragments_out += 1
                    self._send(route, dst, piece, now, out)
            else:
                self._send(route, dst, packet, now, out)
        return out

    def _classify(self, d: PacketDesc, ct, ctinfo: CtInfo, l2_broadcast: bool,
                  now: float, l2=None, ctx=None) -> Route | list:
        """Where a destination not yet in the forwarding cache goes.

        Returns the route to forward by, or the frames that answer the packet
        (local delivery, errors, drops).  Only unicast destinations with a
        route are cached, so a cache hit skips every check below but the
        per-packet ones (martian source, link-layer broadcast).
        """
        dst = d.dst
        if dst in self.local:
            return self._local(d, ct, ctinfo, now, l2, ctx)
        if _MARTIAN_SRC[d.src[0]] or _MARTIAN_DST[dst[0]]:
            return self._drop(Drop.MARTIAN)
        if l2_broadcast:
            # ip_forward(): only PACKET_HOST frames are forwarded.
            return self._drop(Drop.L2_BROADCAST)
        if dst in self.broadcasts or dst[0] >= 224:
            return self._drop(Drop.BROADCAST)
        route = self.fib.lookup(dst)
        if route is None:
            return self._error(d, Drop.NO_ROUTE, icmp.DEST_UNREACH, icmp.NET_UNREACH, 0, now,
                               (ct, ctinfo))
        if len(self._forwardable) >= FORWARD_CACHE_MAX:
            self._forwardable.clear()
        self._forwardable[dst] = route
        return route

    def tick(self, now: float) -> list:
        """Run timers due at now: ARP retries and aging, reassembly timeouts.

        Returns frames to write.
        """
        out, failed = [], []
        if self.neigh.deadline <= now:
            self.neigh.tick(now, out, failed)
        for port, packet in failed:
            self.counters.drops[Drop.NEIGH_FAILED] += 1
            d = parse(memoryview(packet), port)
            if type(d) is not Drop:
                self._icmp_error(d, icmp.DEST_UNREACH, icmp.HOST_UNREACH, 0, now, out)
        if self.conntrack.next_deadline() <= now:
            self.conntrack.expire(now)
            if self.rules is not None:
                self.rules.sweep(self._connview)      # -m connlimit forgets closed entries
        for t in self.defrag.expire(now):
            # ip_expire(): only the datagram's destination reports the timeout
            # (RFC 792); a router stays silent about transit datagrams.
            head = parse(memoryview(bytearray(t.head)), t.in_port)
            if type(head) is not Drop and head.dst in self.local:
                self._icmp_error(head, icmp.TIME_EXCEEDED, icmp.EXC_FRAGTIME, 0, now, out)
        return out

    def next_deadline(self) -> float:
        return min(self.neigh.deadline, self.defrag.next_deadline(), self.conntrack.next_deadline())

    # -- pieces of the path ---------------------------------------------------

    def _ctx(self, d: PacketDesc, ctinfo, ct, in_port, out_name: str, l2, now: float,
             local: bool = False) -> Ctx:
        ctx = Ctx(d, ctinfo, ct, "" if in_port is None else self._names[in_port], out_name,
                  now, b"" if l2 is None else bytes(l2[:ether.HLEN]), self._addrtypes,
                  self._connview, None, local)
        ctx.trace = self._trace
        return ctx

    def _ctx_at(self, ctx, d, ctinfo, ct, in_port, out_name, l2, now) -> Ctx:
        """The packet's Ctx for the next hook: made on first use, then brought up to date."""
        if ctx is None:
            return self._ctx(d, ctinfo, ct, in_port, out_name, l2, now)
        ctx.ctinfo, ctx.conn, ctx.out_name = ctinfo, ct, out_name
        return ctx

    def _nat(self, engine, hook: Hook, manip: int, d: PacketDesc, ct, ctinfo: CtInfo, ctx,
             in_port: int | None, out_name: str, l2, now: float, oif: int = -1) -> tuple:
        """One nat hook for a tracked packet (kernel: nf_nat_inet_fn).

        Returns (frames, ctx): frames are what to send instead when the packet
        ends here, None to go on; ctx is the packet's Ctx, made here when the
        nat chain ran, for the hooks after this one.

        engine is the rules when the nat table has a chain at this hook,
        else None: then no binding is made here, but a connection translated
        earlier still is.  oif: the egress port at POSTROUTING.
        """
        if (ctinfo is _RELATED or ctinfo is _RELATED_REPLY) and d.proto == ipv4.PROTO_ICMP:
            # an ICMP error about ct: translate it and its quote
            if not icmp_reply_translation(d.buf, d.hlen, ct, ctinfo is _RELATED_REPLY, manip):
                # a redirect about a translated connection, or a quote too short to translate
                redirect = d.buf[d.hlen] == icmp.REDIRECT
                return self._drop(Drop.NAT_REDIRECT if redirect else Drop.SHORT), ctx
            self._reread(d, ctx)
            return None, ctx
        direction = 1 if ctinfo is _ESTABLISHED_REPLY or ctinfo is _RELATED_REPLY else 0
        status = ct.status
        if not status & (IPS_CONFIRMED | _NAT_DONE[manip]):
            # The first packet: the nat chain decides (nf_nat_initialized()).
            if engine is None:
                return None, ctx
            ctx = self._ctx_at(ctx, d, ctinfo, ct, in_port, out_name, l2, now)
            v = engine.run(NAT, hook, ctx)
            if v is ACCEPT:
                bound = self.binder.null_binding(ct, manip, now)
            elif type(v) in NAT_TARGETS:
                if hook is _OUT or hook is _PRE:
                    addr = LOOPBACK if in_port is None else self._port_addr[in_port]
                else:
                    addr = self._port_addr[oif] if oif >= 0 else 0
                r, manip = for_target(v, addr)
                bound = self.binder.setup(ct, r, manip, now)
                if type(v) is Masquerade:
                    ct.masq_port = oif
            else:
                return self._verdict(v, d, now, originated=in_port is None,
                                     related=(ct, ctinfo)), ctx
            if not bound:
                return self._drop(Drop.NAT_EXHAUSTED), ctx
        elif ct.masq_port >= 0 and oif >= 0 and direction == 0 and ct.masq_port != oif:
            return self._masq_moved(ct, now), ctx
        if ct.status & _NAT_BIT[manip][direction]:
            addr = nat_packet(d.buf, ct, direction, manip, d.csum == CHECKSUM_PARTIAL)
            if manip == SRC:
                d.src = addr
            else:
                d.dst = addr
            if ctx is not None:
                ctx.reread()
        return None, ctx

    # -- helpers --------------------------------------------------------------

    def set_helper_settings(self, hs: HelperSettings) -> None:
        """New helper settings (a reload): fault handling and auto-assignment."""
        self.helper_settings = hs
        g = self.guard
        g.on_fault, g.max_faults, g.window, g.budget = hs.on_fault, hs.max_faults, hs.window, hs.budget
        self._auto_assign()

    def _auto_assign(self) -> None:
        """auto-assignment (nf_conntrack_helper=1): (proto, port) -> helper."""
        hs = self.helper_settings
        self._auto = {(h.proto, port): h for name, h in self.helpers.items()
                      for port in hs.ports.get(name, h.ports)} if hs.auto else {}

    def replace_helpers(self, helpers: dict) -> dict:
        """Swap in new helper objects (a reload), connections and expectations kept.

        A live connection's helper is replaced by the one of the same name; its
        per-connection state is kept when the class is the same, else the new
        helper's new_state() (when that fails, or the name is gone, the
        connection is no longer inspected).  Every helper is switched back on.
        Returns counts: {"connections": swapped, "detached": no longer inspected}.
        """
        self.helpers = helpers
        self._auto_assign()
        swapped = detached = 0
        for ct in self.conntrack.entries():
            h = ct.help
            if h is None or h.helper is None:
                continue
            old = h.helper
            new = helpers.get(old.name)
            if new is old:
                continue
            if new is not None and type(new) is not type(old):
                try:
                    state = new.new_state()
                except Exception as e:  # noqa: BLE001 - third-party code: contained
                    self.notices.append(f"helper {old.name}: new_state() failed on reload: {e!r}")
                    new = None
                else:
                    h.state = state
            h.helper = new
            if new is None:
                h.state = None
                detached += 1
            else:
                swapped += 1
            for exp in h.expects:
                exp.helper = new if new is not None else old
        for name in helpers:
            self.guard.enable(name)
        return {"connections": swapped, "detached": detached}

    def _attach_helper(self, ct, ctx, now: float) -> None:
        """A new connection gets the helper CT --helper named (the kernel's template), or,
        with auto-assignment on, the helper of its destination port.  A helper that is
        switched off, or whose new_state() faults, leaves the connection without one."""
        name = ctx.ct_helper if ctx is not None else None
        if name is not None:
            helper = self.helpers.get(name)
        elif self._auto:
            helper = self._auto.get((ct.orig[2], ct.orig[4]))
        else:
            return
        if helper is None or helper.name in self.guard.disabled:
            return
        state = self.guard.new_state(helper, now)
        if state is not FAULT:
            ct.help = Help(helper, state=state)

    def _confirm_point(self, d: PacketDesc, ct, ctinfo: CtInfo, now: float):
        """nf_confirm(): the helper and sequence adjustment, then a new entry confirmed.

        Returns the packet's buffer (a new one when a helper rewrote it), or the
        frames to send instead when it is dropped.
        """
        buf = d.buf
        if ct.help is not None:
            buf = self._help(d, ct, ctinfo, now)
            if type(buf) is list:
                return buf
        if (ctinfo is _NEW or ctinfo is _RELATED and ct.status & IPS_EXPECTED) \
                and not self.conntrack.confirm(ct, now):
            return self._ct_drop()
        return buf

    def _help(self, d: PacketDesc, ct, ctinfo: CtInfo, now: float):
        """The confirm point (nf_confirm): the helper reads the packet, then sequence
        adjustment.  Returns the packet's buffer (a new one when rewritten) or, when
        it must be dropped, the frames to send instead ([])."""
        h = ct.help
        buf = d.buf
        direction = 1 if ctinfo is _ESTABLISHED_REPLY or ctinfo is _RELATED_REPLY else 0
        helper = h.helper
        if helper is not None and ctinfo is not _RELATED_REPLY \
                and helper.name not in self.guard.disabled:
            hl = d.hlen
            seq = None
            if d.proto == ipv4.PROTO_TCP:
                data = hl + ((buf[hl + 12] >> 4) << 2)
                seq = int.from_bytes(buf[hl + 4:hl + 8], "big")
            elif d.proto == ipv4.PROTO_UDP:
                data = hl + 8
            else:
                data = len(buf)
            if data < len(buf):
                tup, other = (ct.reply, ct.orig) if direction else (ct.orig, ct.reply)
                pkt = Packet(bytes(buf[data:]), direction, seq, tup, other,
                             bool(ct.status & IPS_NAT_MASK), h.state,
                             ctinfo is _ESTABLISHED or ctinfo is _ESTABLISHED_REPLY)
                found = self.guard.call(helper, pkt, now)
                if found is FAULT:
                    if self.guard.on_fault == "drop":
                        return self._drop(Drop.HELPER_FAULT)
                elif found is not None:
                    buf = self._found(d, ct, helper, pkt, found, now)
                    if type(buf) is list:
                        return buf
        if h.seqadj is not None and d.proto == ipv4.PROTO_TCP:
            seq_adjust(buf, d.hlen, h, direction, d.csum == CHECKSUM_PARTIAL)
        return buf

    def _found(self, d: PacketDesc, ct, helper, pkt: Packet, found, now: float):
        """Register what a helper found; under NAT rewrite the payload to match."""
        tag = f"nf_ct_{helper.name}"
        if found.log:
            self.notices.append(f"{tag}: {found.log}")
        if found.drop:
            return self._helper_drop(f"{tag}: dropping packet: {found.drop}")
        natted = bool(ct.status & IPS_NAT_MASK)
        policy = helper.policy
        expects = self.conntrack.expects
        table_max = self.conntrack.settings.expect_max
        made, edits = [], []
        for e in found.expects:
            exp = Expectation(e.proto, e.src, e.sport, e.dst, e.dport, ct, helper,
                              now + policy.timeout, e.dport, 1 - pkt.direction,
                              self._follow_master if natted else None)
            if natted and e.rewrite is not None:
                port = self._expect_port(exp, policy.max_expected, table_max)
                if not port:
                    self._unexpect(made)
                    return self._helper_drop(f"{tag}: dropping packet: all ports in use")
                edits.append((e.rewrite, port))
            else:
                err = expects.add(exp, policy.max_expected, table_max)
                if err is not None:
                    self._unexpect(made)
                    return self._helper_drop(f"{tag}: dropping packet: cannot add expectation ({err})")
            made.append(exp)
        buf = d.buf
        if edits:
            # from the last to the first, so earlier offsets stay right
            for rw, port in sorted(edits, key=lambda x: -x[0].start):
                text = rw.text(pkt.other[1], port)
                new = mangle(buf, d.hlen, rw.start, rw.end, text)
                if new is None:
                    self._unexpect(made)
                    return self._helper_drop(f"{tag}: dropping packet: cannot mangle packet")
                grown = len(text) - (rw.end - rw.start)
                if d.proto == ipv4.PROTO_TCP and grown:
                    seqadj_set(ct.help, pkt.direction, pkt.seq, grown)
                    ct.status |= IPS_SEQ_ADJUST
                buf = memoryview(new)
            d.buf = buf
            d.csum = CHECKSUM_NONE          # mangle() computed the checksum whole
        return buf

    def _expect_port(self, exp, max_expected: int, table_max: int) -> int:
        """nf_nat_exp_find_port(): the announced port if free, else random ones above it."""
        expects = self.conntrack.expects
        low = port = exp.dport
        span = 65535 - port
        attempts = min(span, 128)
        while True:
            exp.dport = port
            err = expects.add(exp, max_expected, table_max)
            if err is None:
                return port
            attempts -= 1
            if err != BUSY or attempts < 0:
                return 0
            port = low + self.binder.rng.randrange(span)

    def _unexpect(self, made: list) -> None:
        for exp in made:
            self.conntrack.expects.remove(exp)

    def _helper_drop(self, line: str) -> list:
        self.notices.append(line)
        return self._drop(Drop.HELPER)

    def _follow_master(self, ct, exp, now: float) -> None:
        """nf_nat_follow_master(): an expected connection is translated as its master is."""
        m = exp.master
        t = m.orig if exp.dir else m.reply          # the master's tuple for !exp.dir
        src = int.from_bytes(t[1], "big")
        self.binder.setup(ct, NatRange(MAP_IPS, src, src), SRC, now)
        dst = int.from_bytes(t[0], "big")
        self.binder.setup(ct, NatRange(MAP_IPS | PROTO_SPECIFIED, dst, dst, exp.saved_port,
                                       exp.saved_port), DST, now)

    @staticmethod
    def _account(d: PacketDesc, ct, ctinfo: CtInfo) -> None:
        """nf_conntrack_acct: the packet counts for its connection's direction (an ICMP
        error about it does not: it is not part of it)."""
        if d.proto == ipv4.PROTO_ICMP and (ctinfo is _RELATED or ctinfo is _RELATED_REPLY):
            return
        i = 2 if ctinfo is _ESTABLISHED_REPLY or ctinfo is _RELATED_REPLY else 0
        a = ct.acct
        if d.gso is None:
            a[i] += 1
            a[i + 1] += len(d.buf)
        else:                                   # a super-segment: the packets it stands for
            packets, size = wire_count(d.buf, d.gso[1])
            a[i] += packets
            a[i + 1] += size

    def _masq_moved(self, ct, now: float) -> list:
        """nf_nat_oif_changed(): a masqueraded connection's route moved to
        another port, whose address it does not have: kill it."""
        self.conntrack.kill(ct, now)
        return self._drop(Drop.NAT_OIF_CHANGED)

    def _reread(self, d: PacketDesc, ctx) -> None:
        """After an ICMP error was translated: its addresses, and the rules' view of it."""
        buf = d.buf
        d.src = bytes(buf[12:16])
        d.dst = bytes(buf[16:20])
        if ctx is not None:
            ctx.reread()

    def port_down(self, port: int, now: float) -> int:
        """A port's device went away: its routes and address go, and what was
        masqueraded through it dies (kernel: fib_sync_down_dev(), and
        nf_nat_masquerade's device notifier).

        Returns how many connections were deleted.
        """
        self.fib.remove_port(port)
        self._forwardable.clear()
        address = self.ports[port].address
        if self.local.get(address) == port:
            del self.local[address]
        return self.conntrack.delete(lambda c: c.masq_port == port, now)

    def _verdict(self, v, d: PacketDesc, now: float, originated: bool = False,
                 related=None) -> list:
        """A rule's verdict other than ACCEPT: the packet is dropped, perhaps answered.

        related: the packet's (conntrack entry, ctinfo), which an answer belongs to.
        """
        if v is DROP:
            return self._drop(Drop.RULE)
        if type(v) is Reject:
            self.counters.drops[Drop.REJECT] += 1
            out = []
            # A packet the router made itself is refused towards the router:
            # the kernel delivers that error locally, where nothing reads it.
            if not originated:
                self._reject(v, d, now, out, related)
            return out
        raise AssertionError(f"verdict {v!r} cannot be applied")

    def _reject(self, v: Reject, d: PacketDesc, now: float, out: list, related=None) -> None:
        """ipt_REJECT: nf_send_unreach() is icmp_send(), rate-limited like any; or nf_send_reset()."""
        what = v.icmp
        if what is not None:
            self._icmp_error(d, what[0], what[1], 0, now, out, related)
            return
        # nf_send_reset(): never for a non-first fragment or a RST; from the
        # original destination, seq/ack as nf_reject_ip_tcphdr_put(), DF set.
        if d.proto != ipv4.PROTO_TCP or d.frag & ipv4.OFFSET_MASK:
            return
        self._tcp_reset(d, now, out, frag=ipv4.FLAG_DF, related=related)

    def _drop(self, reason: Drop) -> list:
        self.counters.drops[reason] += 1
        return []

    def _ct_drop(self) -> list:
        """Conntrack refused the packet: table full or a lost insert race (NF_DROP)."""
        self.notices.append(f"nf_conntrack: {self.conntrack.reason}")
        return self._drop(Drop.CONNTRACK)

    def _queue_full(self) -> None:
        self.counters.drops[Drop.NEIGH_QUEUE_FULL] += 1

    def _error(self, d: PacketDesc, reason: Drop, icmp_type: int, code: int, rest: int,
               now: float, related=None) -> list:
        """Drop d for reason and answer its source with an ICMP error."""
        self.counters.drops[reason] += 1
        out = []
        self._icmp_error(d, icmp_type, code, rest, now, out, related)
        return out

    def _send(self, route: Route, dst: bytes, packet, now: float, out: list) -> None:
        """A complete packet out of route's port."""
        if self._tap[route.port]:
            self.neigh.resolve(route.port, route.next_hop or dst, packet, now, out,
                               self._queue_full)
        elif self._vnet[route.port]:
            out.append((route.port, vnet.NONE + bytes(packet)))
        else:
            out.append((route.port, packet))

    def _originate(self, src: bytes, dst: bytes, proto: int, tos: int, payload: bytes,
                   now: float, out: list, frag: int = 0, related=None) -> None:
        """Send a packet the router itself makes (ICMP, RST) towards dst.

        related: the (entry, ctinfo) of the packet this one answers (an error,
        a REJECT's reset).  As the kernel's nf_ct_attach(), the answer then
        belongs to that entry, RELATED in the other direction, without a
        lookup: so it is translated back even when the entry is not
        confirmed yet (the first packet of a connection was refused).
        """
        route = self.fib.lookup(dst)
        if route is None:
            return
        self._ident = (self._ident + 1) & 0xFFFF
        packet = ipv4.emit(tos, self._ident, frag, ICMP_TTL, proto, src, dst, payload)
        # OUTPUT: raw OUTPUT, then tracked like any other packet (an echo reply
        # is the REPLY of the request's entry), the OUTPUT and POSTROUTING
        # rules, confirmed as it leaves.
        d = parse(memoryview(bytearray(packet)), route.port)
        ctx = None
        out_name = self._names[route.port]
        if self._raw_out is not None:
            ctx = self._ctx(d, _INVALID, None, None, out_name, None, now, local=True)
            v = self.rules.run(RAW, _OUT, ctx)
            if v is not ACCEPT:
                self._verdict(v, d, now, originated=True)
                return
            ct, ctinfo = (None, _UNTRACKED) if ctx.notrack else self._track_out(d, now, related)
        else:
            ct, ctinfo = self._track_out(d, now, related)
        if ctinfo is _CT_DROP:
            self._ct_drop()
            return
        nat = ct is not None and (ctinfo is not _ESTABLISHED and ctinfo is not _ESTABLISHED_REPLY
                                  or ct.status & IPS_NAT_MASK)
        for table, hook, engine in ((NAT, _OUT, self._nat_out), (FILTER, _OUT, self._filter_out),
                                    (NAT, _POST, self._nat_post)):
            if table == NAT:
                if not nat:
                    continue
                manip, oif = (DST, -1) if hook is _OUT else (SRC, route.port)
                # (a Ctx made by the nat chain is not one for the OUTPUT rules: local is unset)
                done, _ = self._nat(engine, hook, manip, d, ct, ctinfo, ctx, None, out_name, None,
                                    now, oif)
                if done is not None:
                    return
                continue
            if engine is None:
                continue
            if ctx is None:
                ctx = self._ctx(d, ctinfo, ct, None, out_name, None, now, local=True)
            else:
                ctx.ctinfo, ctx.conn = ctinfo, ct
            v = engine.run(table, hook, ctx)
            if v is not ACCEPT:
                self._verdict(v, d, now, originated=True)
                return
        if ctinfo is _NEW and not self.conntrack.confirm(ct, now):
            self._ct_drop()
            return
        if d.dst != dst:
            # nat OUTPUT moved the destination: route again (ip_route_me_harder)
            route = self.fib.lookup(d.dst)
            if route is None:
                return
            dst = d.dst
        packet = d.buf
        if len(packet) > self._mtu[route.port]:
            pieces = fragment(packet, self._mtu[route.port])
        else:
            pieces = [packet]
        for piece in pieces:
            self._send(route, dst, piece, now, out)

    def _track_out(self, d: PacketDesc, now: float, related):
        """Conntrack at OUTPUT: the answered packet's entry (nf_ct_attach), or a lookup."""
        if related is not None and related[0] is not None:
            ct, ctinfo = related
            reply = ctinfo is _ESTABLISHED_REPLY or ctinfo is _RELATED_REPLY
            return ct, (_RELATED if reply else _RELATED_REPLY)
        return self.conntrack.track(d, now)

    def _icmp_error(self, d: PacketDesc, icmp_type: int, code: int, rest: int, now: float,
                    out: list, related=None) -> None:
        """RFC 1812 §4.3.2.7 and the kernel's icmp_send(): when not to answer, then answer.

        Never about a non-first fragment, an ICMP error (or an ICMP message too
        short to tell), or a packet from a non-unicast source; rate-limited per
        destination except fragmentation-needed.
        """
        if d.frag & ipv4.OFFSET_MASK:
            return
        if d.proto == ipv4.PROTO_ICMP:
            if len(d.buf) <= d.hlen or d.buf[d.hlen] in icmp.ERRORS:
                return
        src = d.src
        if _MARTIAN_SRC[src[0]] or src in self.broadcasts:
            return
        if not (icmp_type == icmp.DEST_UNREACH and code == icmp.FRAG_NEEDED):
            if not self.icmp_limit.allow(src, now):
                self.counters.icmp_ratelimited += 1
                return
        route = self.fib.lookup(src)
        if route is None:
            return
        quote = d.buf[:ICMP_ERROR_MAX - ipv4.MIN_HLEN - icmp.HLEN]
        msg = icmp.emit(icmp_type, code, rest, quote)
        tos = (d.tos & TOS_MASK) | TOS_PREC_INTERNETCONTROL
        self.counters.icmp_sent += 1
        self._originate(self.ports[route.port].address, src, ipv4.PROTO_ICMP, tos, msg, now, out,
                        related=related)

    def _local(self, d: PacketDesc, ct, ctinfo: CtInfo, now: float, l2=None, ctx=None) -> list:
        """A packet for one of the router's own addresses (any port: weak host model)."""
        if _MARTIAN_SRC[d.src[0]]:
            return self._drop(Drop.MARTIAN)
        if self._filter_in is not None:
            ctx = self._ctx_at(ctx, d, ctinfo, ct, d.in_port, "", l2, now)
            v = self.rules.run(FILTER, _IN, ctx)
            if v is not ACCEPT:
                return self._verdict(v, d, now, related=(ct, ctinfo))
        if ct is not None and (ctinfo is not _ESTABLISHED and ctinfo is not _ESTABLISHED_REPLY
                               or ct.status & IPS_NAT_MASK):
            done, ctx = self._nat(self._nat_in, _IN, SRC, d, ct, ctinfo, ctx, d.in_port, "", l2,
                                  now)
            if done is not None:
                return done
        if ct is not None:
            done = self._confirm_point(d, ct, ctinfo, now)          # INPUT confirm
            if type(done) is list:
                return done
        self.counters.local += 1
        out = []
        payload = d.payload
        if d.proto == ipv4.PROTO_ICMP:
            if len(payload) >= icmp.HLEN and payload[0] == icmp.ECHO_REQUEST:
                # icmp_echo(): same code, identifier, sequence and data.
                msg = icmp.emit(icmp.ECHO_REPLY, payload[1],
                                int.from_bytes(payload[4:8], "big"), payload[8:])
                self.counters.icmp_sent += 1
                self._originate(d.dst, d.src, ipv4.PROTO_ICMP, d.tos, msg, now, out)
        elif d.proto == ipv4.PROTO_UDP:
            self._icmp_error(d, icmp.DEST_UNREACH, icmp.PORT_UNREACH, 0, now, out, (ct, ctinfo))
        elif d.proto == ipv4.PROTO_TCP:
            # tcp_v4_send_reset() sends from a control socket with IP_PMTUDISC_DO: DF set
            self._tcp_reset(d, now, out, frag=ipv4.FLAG_DF)
        else:
            self._icmp_error(d, icmp.DEST_UNREACH, icmp.PROT_UNREACH, 0, now, out, (ct, ctinfo))
        return out

    def _tcp_reset(self, d: PacketDesc, now: float, out: list, frag: int = 0,
                   related=None) -> None:
        """Refuse a TCP segment to the router as tcp_v4_send_reset() does."""
        seg = d.payload
        if len(seg) < tcp.MIN_HLEN:
            return
        sport, dport, seq, ack_no, off, flags, _w, _c, _u = tcp.HEADER.unpack_from(seg)
        if flags & tcp.RST:
            return
        if flags & tcp.ACK:
            rst_seq, rst_ack, rst_flags = ack_no, 0, tcp.RST
        else:
            data_len = len(seg) - ((off >> 4) << 2)
            rst_seq = 0
            rst_ack = (seq + data_len + bool(flags & tcp.SYN) + bool(flags & tcp.FIN)) & 0xFFFFFFFF
            rst_flags = tcp.RST | tcp.ACK
        hdr = bytearray(tcp.HEADER.pack(dport, sport, rst_seq, rst_ack, 5 << 4, rst_flags, 0, 0, 0))
        hdr[tcp.CHECKSUM:tcp.CHECKSUM + 2] = l4_csum(d.dst, d.src, ipv4.PROTO_TCP, hdr).to_bytes(2, "big")
        self._originate(d.dst, d.src, ipv4.PROTO_TCP, 0, bytes(hdr), now, out, frag, related)

    def _arp(self, port: int, body: memoryview, now: float) -> list:
        """Answer requests for our address on this port; learn senders (arp_process)."""
        parsed = arp.parse(body)
        if parsed is None:
            return self._drop(Drop.BAD_ARP)
        op, sha, spa, _tha, tpa = parsed
        me = self.ports[port]
        if ether.is_multicast(sha) or spa == b"\0\0\0\0" and op != arp.OP_REQUEST:
            return self._drop(Drop.BAD_ARP)
        self.counters.arp += 1
        out = []
        for_us = tpa == me.address
        if spa != b"\0\0\0\0":
            self.neigh.learn(port, spa, sha, now, out, create=for_us)
        if op == arp.OP_REQUEST and for_us:
            reply = arp.emit(arp.OP_REPLY, me.mac, me.address, sha, spa)
            prefix = vnet.NONE if self._vnet[port] else b""
            out.append((port, prefix + ether.header(sha, me.mac, ether.ETH_P_ARP) + reply))
        return out
