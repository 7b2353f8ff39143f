"""`tunrouter trace [FILTER]`: what happened to the packets FILTER selects, hook by hook.

    $ tunrouter trace --lab home udp port 53
    trace 1 in lan0: IP / UDP 10.1.0.2:45000 > 203.0.113.80:domain / Raw
      conntrack NEW
      nat PREROUTING: policy ACCEPT
      filter FORWARD rule 2: -A FORWARD -i lan+ -j ACCEPT
      nat POSTROUTING rule 1: -A POSTROUTING -o wan0 -j MASQUERADE
      out wan0: IP / UDP 203.0.113.1:45000 > 203.0.113.80:domain / Raw
      NAT: source 10.1.0.2:45000 -> 203.0.113.1:45000
      verdict: forwarded

FILTER is tcpdump style (host, net, port, portrange, src/dst, tcp/udp/icmp,
and/or/not, parentheses) or iptables style after "--" (-s, -d, -p, -i,
--dport, -m ...: `tunrouter trace --lab home -- -p udp --dport 53`).  Runs
until Ctrl-C, or --count traces.
"""
import sys

from tunrouter.driver.control import subscribe


def add_parsers(sub, add_target, resolve) -> None:
    p = sub.add_parser("trace", help="show each hook, chain and rule the packets FILTER selects "
                                     "go through, their NAT and their fate",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    add_target(p)
    p.add_argument("-c", "--count", type=int, default=0, help="stop after N traces")
    p.add_argument("filter", nargs="*", help="tcpdump-style or iptables-style filter")
    p.set_defaults(func=lambda a: run_trace(a, resolve(a)))


def _summary(raw: bytes) -> str:
    from scapy.layers.inet import IP  # Scapy only here, never in the router
    return IP(raw).summary()


def _ends(raw: bytes) -> tuple[str, str]:
    """src and dst "address[:port]" of an IPv4 packet."""
    hl = (raw[0] & 15) * 4
    src, dst = ".".join(map(str, raw[12:16])), ".".join(map(str, raw[16:20]))
    if raw[9] in (6, 17) and len(raw) >= hl + 4:
        src += f":{int.from_bytes(raw[hl:hl + 2], 'big')}"
        dst += f":{int.from_bytes(raw[hl + 2:hl + 4], 'big')}"
    return src, dst


def format_trace(t: dict) -> list[str]:
    packet = bytes.fromhex(t["packet"])
    lines = [f"trace {t['id']} in {t['in']}: {_summary(packet)}"]
    for e in t["events"]:
        if e[0] == "conntrack":
            lines.append(f"  conntrack {e[1]}")
            continue
        table, hook, chain, number, what = e
        where = f"{table} {chain}" if chain == hook else f"{table} {hook} {chain}"
        if number > 0:
            lines.append(f"  {where} rule {number}: {what}")
        elif number == 0:
            lines.append(f"  {where}: policy {what}")
        else:
            lines.append(f"  {table} {hook}: unreadable packet, dropped (hotdrop)")
    for port, frame in t["out"]:
        ip = bytes.fromhex(frame)
        lines.append(f"  out {port}: " + ("ARP (the packet waits for the neighbour)"
                                          if ip[:1] and ip[0] >> 4 != 4 else _summary(ip)))
    before, after = _ends(packet), _ends(bytes.fromhex(t["after"]))
    if after[0] != before[0]:
        lines.append(f"  NAT: source {before[0]} -> {after[0]}")
    if after[1] != before[1]:
        lines.append(f"  NAT: destination {before[1]} -> {after[1]}")
    outcome = t["outcome"]
    if not outcome:
        verdict = "held (waiting for ARP, or a fragment waiting for the rest)"
    elif outcome[0] in ("forwarded", "local"):
        verdict = ", ".join(outcome)
    else:
        verdict = f"dropped ({', '.join(outcome)})"
    lines.append(f"  verdict: {verdict}")
    return lines


def run_trace(args, sock: str) -> int:
    shown = 0
    try:
        for t in subscribe(sock, "trace", filter=" ".join(args.filter)):
            print("\n".join(format_trace(t)), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                break
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    print(f"{shown} packets traced.", file=sys.stderr)
    return 0
