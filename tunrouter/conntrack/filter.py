"""Entry filters for `conntrack -L/-D/-E`: conntrack-tools' options as a predicate.

A filter spec is a plain dict, as the control socket carries it; keys are
the long option names of conntrack(8) with dashes as underscores:

    protonum      protocol number
    orig_src orig_dst reply_src reply_dst      "a.b.c.d" or "a.b.c.d/len"
    orig_port_src orig_port_dst reply_port_src reply_port_dst   ports (TCP, UDP)
    icmp_type icmp_code icmp_id                 the original direction's ICMP fields
    state         TCP state name ("ESTABLISHED")
    status        list of status names: ASSURED, SEEN_REPLY, UNSET (neither)
    mark          [value, mask]
    src_nat dst_nat any_nat     true, or "a.b.c.d": source / destination / either
                  translated (to that address: the reply tuple's destination for
                  source NAT, its source for destination NAT)

Every key present must match (conntrack-tools ANDs its filters).  Unknown keys
and bad values raise ValueError, which the control socket reports.
"""
from collections.abc import Callable

from tunrouter.conntrack.conn import (
    IPS_ASSURED,
    IPS_DST_NAT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    Conn,
)
from tunrouter.wire import ipv4

STATUS_BITS = {"ASSURED": IPS_ASSURED, "SEEN_REPLY": IPS_SEEN_REPLY}
_ADDRS = {"orig_src": (0, 0), "orig_dst": (0, 1), "reply_src": (1, 0), "reply_dst": (1, 1)}
_PORTS = {"orig_port_src": (0, 3), "orig_port_dst": (0, 4), "reply_port_src": (1, 3),
          "reply_port_dst": (1, 4)}


def _prefix(key: str, text: str) -> tuple[int, int]:
    addr, _, plen = str(text).partition("/")
    parts = addr.split(".")
    try:
        if len(parts) != 4 or not all(0 <= int(p) <= 255 for p in parts):
            raise ValueError
        n = int(plen) if plen else 32
        if not 0 <= n <= 32:
            raise ValueError
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not an IPv4 address or prefix")
    mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    value = int.from_bytes(bytes(int(p) for p in parts), "big")
    return value & mask, mask


def _int(key: str, v, top: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= top:
        raise ValueError(f"{key}: expected a number from 0 to {top}, got {v!r}")
    return v


def _nat_test(spec: dict, key: str) -> Callable[[Conn], bool] | None:
    """conntrack-tools' --src-nat/--dst-nat [IP]: the status bit, and the address it maps to."""
    if key not in spec:
        return None
    value = spec.pop(key)
    bit, field = (IPS_SRC_NAT, 1) if key == "src_nat" else (IPS_DST_NAT, 0)
    if value is True:
        return lambda c: bool(c.status & bit)
    addr, mask = _prefix(key, value)
    if mask != 0xFFFFFFFF:
        raise ValueError(f"{key}: {value!r} must be one address")
    return lambda c: bool(c.status & bit) and int.from_bytes(c.reply[field], "big") == addr


def make_filter(spec: dict) -> Callable[[Conn], bool]:
    """A predicate over entries for the given spec (empty: every entry)."""
    tests: list[Callable[[Conn], bool]] = []
    spec = dict(spec)
    proto = spec.pop("protonum", None)
    if proto is not None:
        proto = _int("protonum", proto, 255)
        tests.append(lambda c: c.orig[2] == proto)
    for key, (direction, field) in _ADDRS.items():
        if key in spec:
            value, mask = _prefix(key, spec.pop(key))
            tests.append(lambda c, d=direction, f=field, v=value, m=mask:
                         int.from_bytes((c.orig, c.reply)[d][f], "big") & m == v)
    for key, (direction, field) in _PORTS.items():
        if key in spec:
            if proto not in (ipv4.PROTO_TCP, ipv4.PROTO_UDP):
                raise ValueError(f"{key.replace('_', '-')} needs a protocol with ports (tcp or udp)")
            port = _int(key, spec.pop(key), 65535)
            tests.append(lambda c, d=direction, f=field, p=port: (c.orig, c.reply)[d][f] == p)
    icmp = {k: spec.pop(k) for k in ("icmp_type", "icmp_code", "icmp_id") if k in spec}
    if icmp:
        if proto != ipv4.PROTO_ICMP:
            raise ValueError("icmp-type, icmp-code and icmp-id need protonum icmp")
        if "icmp_type" in icmp:
            t = _int("icmp_type", icmp["icmp_type"], 255)
            tests.append(lambda c: c.orig[4] >> 8 == t)
        if "icmp_code" in icmp:
            code = _int("icmp_code", icmp["icmp_code"], 255)
            tests.append(lambda c: c.orig[4] & 0xFF == code)
        if "icmp_id" in icmp:
            ident = _int("icmp_id", icmp["icmp_id"], 65535)
            tests.append(lambda c: c.orig[3] == ident)
    if "state" in spec:
        if proto != ipv4.PROTO_TCP:
            raise ValueError("state needs protonum tcp")
        state = str(spec.pop("state")).upper()
        tests.append(lambda c: c.state is not None and c.state.name == state)
    if "status" in spec:
        names = spec.pop("status")
        if not isinstance(names, list) or not names:
            raise ValueError("status: expected a list of status names")
        want, unset = 0, False
        for name in names:
            if name == "UNSET":
                unset = True
            elif name in STATUS_BITS:
                want |= STATUS_BITS[name]
            else:
                raise ValueError(f"status: unknown status {name!r}; known: ASSURED, SEEN_REPLY, UNSET")
        every = IPS_ASSURED | IPS_SEEN_REPLY
        if unset:
            tests.append(lambda c: not c.status & every)
        if want:
            tests.append(lambda c: c.status & want == want)
    if "mark" in spec:
        mark = spec.pop("mark")
        if not isinstance(mark, list) or len(mark) != 2:
            raise ValueError("mark: expected [value, mask]")
        value, mask = (_int("mark", x, 0xFFFFFFFF) for x in mark)
        tests.append(lambda c: c.mark & mask == value)
    nat = [t for t in (_nat_test(spec, "src_nat"), _nat_test(spec, "dst_nat")) if t]
    if nat:
        tests.append(nat[0] if len(nat) == 1 else lambda c: nat[0](c) and nat[1](c))
    if "any_nat" in spec:
        spec["src_nat"] = spec["dst_nat"] = spec.pop("any_nat")
        either = _nat_test(spec, "src_nat"), _nat_test(spec, "dst_nat")
        tests.append(lambda c: either[0](c) or either[1](c))
    if spec:
        raise ValueError(f"unknown filter {next(iter(spec))!r}")
    if not tests:
        return lambda c: True
    return lambda c: all(t(c) for t in tests)
