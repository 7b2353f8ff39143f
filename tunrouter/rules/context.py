"""The per-packet context the router fills before running a hook, and what it returns.

This is the contract between the router and the rule engine.  The router
builds one Ctx per packet per hook traversal (cheap: slots and a handful of
integer reads) and the engine, matches and targets read it; targets that do
not end the traversal leave their effect here (CT/NOTRACK) or in the
engine's side-output lists (LOG, NFLOG).

Mirrors the kernel's struct xt_action_param plus what the extensions reach
through the skb: the conntrack entry and ctinfo (nf_ct_get), the devices,
the MAC header, the socket-less "TTL before forwarding" rule of xt_recent.
"""
import struct
from typing import Protocol

from tunrouter.rules.model import IPPROTO_TCP, IPPROTO_UDP

_PORTS = struct.Struct("!HH").unpack_from
_ADDRS = struct.Struct("!II").unpack_from
_FRAG_OFFSET = 0x1FFF

# Route types (RTN_*), as -m addrtype names them.
RTN_UNSPEC, RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST, RTN_MULTICAST = range(6)
RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW, RTN_NAT, RTN_XRESOLVE = range(6, 12)


class HotDrop(Exception):
    """A match could not read the packet it must judge: drop it (the kernel's hotdrop)."""


class ConnView(Protocol):
    """What -m connlimit needs from the router's conntrack table (nf_conncount's view).

    alive(conn) is False once the entry has left the table, and for TCP
    connections already closing (TIME_WAIT, CLOSE), which nf_conncount stops
    counting (already_closed()).
    """

    def alive(self, conn) -> bool: ...


class AddrTypes:
    """The router's own addresses as the kernel's local routing table holds them.

    For -m addrtype (kernel: __inet_dev_addr_type() on RT_TABLE_LOCAL):
    0.0.0.0/8 and 255.255.255.255 are BROADCAST, 224/4 is MULTICAST, an address
    of a port is LOCAL, a port's subnet broadcast is BROADCAST, 127/8 is LOCAL
    (on "lo", as in any namespace with loopback up), anything else UNICAST.
    With a device given (--limit-iface-in/out) a local route of another device
    makes the address UNICAST, as the kernel's nexthop-device check does.

    ports: (port name, address int, prefix length) for each port.
    """
    __slots__ = ("_local",)

    def __init__(self, ports):
        self._local: dict[int, tuple[int, str]] = {}
        for name, addr, prefixlen in ports:
            self._local[addr] = (RTN_LOCAL, name)
            if prefixlen < 31:
                bcast = addr | (0xFFFFFFFF >> prefixlen)
                self._local.setdefault(bcast, (RTN_BROADCAST, name))

    def type_of(self, addr: int, dev: str | None = None) -> int:
        first = addr >> 24
        if first == 0 or addr == 0xFFFFFFFF:
            return RTN_BROADCAST
        if first >= 224 and first < 240:
            return RTN_MULTICAST
        if first == 127:
            return RTN_LOCAL if dev is None or dev == "lo" else RTN_UNICAST
        entry = self._local.get(addr)
        if entry is None or (dev is not None and entry[1] != dev):
            return RTN_UNICAST
        return entry[0]


class Ctx:
    """One packet at one hook, as the rules see it.

    Filled by the router (inputs):
      desc          PacketDesc of the IPv4 packet (buf is exactly the packet).
      ctinfo        CtInfo from conntrack (UNTRACKED / INVALID when no entry).
      conn          the Conn, or None (untracked, invalid).
      in_name       input port name ("" for router-originated packets: OUTPUT).
      out_name      output port name ("" before routing: PREROUTING, INPUT).
      now           monotonic seconds (limit, hashlimit, recent).
      mac_header    the frame's link-layer header on a TAP port (14 bytes), b"" on TUN:
                    LOG prints it as MAC=, -m mac reads the source address in it.
      addrtypes     AddrTypes of the router's ports (-m addrtype).
      conns         ConnView over the conntrack table (-m connlimit).
      master_helper name of the helper of conn's master connection, or None
                    (-m helper matches expected connections, e.g. FTP data).
      local         True for packets the router itself sends (OUTPUT, and their
                    POSTROUTING): they count as having a local socket.

    Derived from desc by reread() (at creation, and after NAT rewrote the
    packet): saddr/daddr (ints), proto, fragoff, length, and sport/dport for
    TCP and UDP first fragments (-1 when absent or cut short).

    Written by the engine and targets (outputs):
      hook          the hook being run.
      notrack       NOTRACK / CT --notrack ran: the router must not track it.
      ct_helper     CT --helper NAME ran: the helper to attach to the new connection.
      trace         a list while the packet is traced: the engine appends
                    (table, hook, chain, rule number, Rule) for each rule that
                    matched, (table, hook, chain, 0, policy) for a policy, and
                    (table, hook, "", -1, DROP) for a hotdrop; None otherwise.
    """
    __slots__ = ("desc", "ctinfo", "conn", "in_name", "out_name", "now", "mac_header",
                 "addrtypes", "conns", "master_helper", "local",
                 "proto", "fragoff", "length", "saddr", "daddr", "sport", "dport",
                 "hook", "notrack", "ct_helper", "trace")

    def __init__(self, desc, ctinfo, conn, in_name: str, out_name: str, now: float,
                 mac_header: bytes = b"", addrtypes: AddrTypes | None = None,
                 conns: ConnView | None = None, master_helper: str | None = None,
                 local: bool = False):
        self.desc = desc
        self.ctinfo = ctinfo
        self.conn = conn
        self.in_name = in_name
        self.out_name = out_name
        self.now = now
        self.mac_header = mac_header
        self.addrtypes = addrtypes
        self.conns = conns
        self.master_helper = master_helper
        self.local = local
        self.hook = None
        self.notrack = False
        self.ct_helper = None
        self.trace = None
        self.reread()

    def reread(self) -> None:
        """Derive the header fields from desc; again after NAT has rewritten the packet."""
        desc = self.desc
        buf = desc.buf
        self.saddr, self.daddr = _ADDRS(buf, 12)
        proto = self.proto = desc.proto
        fragoff = self.fragoff = desc.frag & _FRAG_OFFSET
        self.length = len(buf)
        if (proto == IPPROTO_TCP or proto == IPPROTO_UDP) and not fragoff \
                and len(buf) >= desc.hlen + 4:
            self.sport, self.dport = _PORTS(buf, desc.hlen)
        else:
            self.sport = self.dport = -1
