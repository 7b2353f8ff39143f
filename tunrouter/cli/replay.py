"""`tunrouter replay CAPTURE`: a capture through the router, offline, packet by packet.

Scapy reads the capture here (Ethernet, raw IP, Linux cooked); the replay
itself (tunrouter.replay) runs the core as the driver does, at each packet's
capture timestamp.  Exit status 1 when a helper faulted, 2 on a usage error.
"""
import sys
from pathlib import Path

from tunrouter.helpers import HelperSettings


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "replay", help="run a pcap through the router offline (no root): ctstate, helpers, rewrites",
        description="Feed every IPv4 packet of CAPTURE to a two-port router (lan0 faces the first "
                    "packet's source, wan0 the rest) and print what the router made of it.")
    p.add_argument("capture", help="a pcap or pcapng file (Ethernet, raw IP or Linux cooked)")
    p.add_argument("--rules", metavar="FILE", help="iptables-save text to load (e.g. a raw-table "
                   "CT --helper rule, NAT)")
    p.add_argument("--helper", action="append", default=[], metavar="NAME|PATH.py",
                   help="attach this helper by port: a helper's name, or a Python file defining "
                        "a Helper subclass (repeatable)")
    p.add_argument("--port", type=int, action="append", default=[], dest="ports", metavar="PORT",
                   help="with --helper: the ports it is attached by (default: the helper's own)")
    p.add_argument("--on-fault", choices=["accept", "drop"], default="accept",
                   help="a faulting helper's packet: forwarded (default) or dropped")
    p.add_argument("--budget-ms", type=float, default=50.0, metavar="MS",
                   help="time one help() call may take (default 50)")
    p.add_argument("--addresses", metavar="LAN_IP,WAN_IP",
                   help="the router's own addresses on lan0 and wan0 (default: free ones in "
                        "198.18.0.0/15); e.g. WAN_IP the address replies to a masqueraded "
                        "connection go to in the capture")
    p.set_defaults(func=run)


def _fail(text: str) -> int:
    print(f"tunrouter replay: {text}", file=sys.stderr)
    return 2


def read_capture(path: str):
    """Records from a capture file: each frame's timestamp and its IPv4 packet."""
    from scapy.all import IP, raw, rdpcap

    from tunrouter.replay import Record

    packets = rdpcap(path)
    records = []
    for pkt in packets:
        if IP in pkt:
            records.append(Record(float(pkt.time), raw(pkt[IP])))
        else:
            records.append(Record(float(pkt.time), None, f"not IPv4: {pkt.summary()}"))
    return packets, records


def run(args) -> int:
    from scapy.all import IP

    from tunrouter.config import ConfigError, helper_classes
    from tunrouter.driver.alarm import HelperAlarm
    from tunrouter.replay import Replay, load_helper_file
    from tunrouter.rules.targets import register_ct_helper

    try:
        classes = helper_classes("tunrouter.helpers", "entry points")
    except ConfigError as e:
        return _fail(str(e))
    chosen = []
    for h in args.helper:
        if h.endswith(".py") or "/" in h:
            try:
                found = load_helper_file(h)
            except (ValueError, OSError) as e:
                return _fail(str(e))
            for cls in found:
                classes[cls.name] = cls
                register_ct_helper(cls.name, cls.proto)
                chosen.append(cls.name)
        elif h in classes:
            chosen.append(h)
        else:
            return _fail(f"no helper named {h!r}; helpers: {', '.join(sorted(classes))}")
    if args.ports and not chosen:
        return _fail("--port goes with --helper")
    for name in chosen:
        if not (args.ports or classes[name].ports):
            return _fail(f"helper {name} has no default ports: give --port")
    ports = {name: () for name in classes}
    ports.update({name: tuple(args.ports) or tuple(classes[name].ports) for name in chosen})
    if args.budget_ms <= 0:
        return _fail("--budget-ms must be positive")
    settings = HelperSettings(auto=bool(chosen), ports=ports, on_fault=args.on_fault,
                              budget=args.budget_ms / 1000.0)
    addresses = None
    if args.addresses:
        import netaddr

        try:
            lan, wan = args.addresses.split(",")
            addresses = (netaddr.IPAddress(lan.strip(), version=4).packed,
                         netaddr.IPAddress(wan.strip(), version=4).packed)
        except (ValueError, netaddr.AddrFormatError):
            return _fail(f"--addresses {args.addresses!r}: expected LAN_IP,WAN_IP")
    engine = None
    if args.rules:
        from tunrouter.core.hooks import engine_for
        from tunrouter.rules import RuleSyntaxError

        try:
            engine = engine_for(Path(args.rules).read_text())
        except OSError as e:
            return _fail(f"{args.rules}: cannot read: {e.strerror}")
        except RuleSyntaxError as e:
            return _fail(f"{args.rules}: {e}")
    try:
        packets, records = read_capture(args.capture)
    except (OSError, ValueError) as e:
        return _fail(f"{args.capture}: cannot read: {e}")
    except Exception as e:  # noqa: BLE001 - Scapy's own exception for a file that is not a capture
        return _fail(f"{args.capture}: not a capture file ({type(e).__name__}: {e})")
    if not any(r.data is not None for r in records):
        return _fail(f"{args.capture}: no IPv4 packets")
    helpers = {name: cls() for name, cls in classes.items()}
    replay = Replay(records, helpers, settings, engine, addresses)
    t0 = records[0].time
    with HelperAlarm().install(replay.router.guard):
        for i, pkt in enumerate(packets):
            step = replay.step(i)
            print(f"{step.index:>4} {step.time - t0:10.6f} {step.port or '-':<5} "
                  f"{step.ctstate or '-':<11} {pkt.summary()}")
            if step.skipped:
                print(f"{'':>6}skipped: {step.skipped}")
                continue
            for port, sent in step.sent:
                print(f"{'':>6}sent {port}: {IP(sent).summary()}")
            if not step.sent:
                print(f"{'':>6}not forwarded")
            for line in step.expects:
                print(f"{'':>6}expect: {line}")
            for label in step.drops:
                print(f"{'':>6}drop: {label}")
            for note in step.notices:
                for j, line in enumerate(note.splitlines()):
                    print(f"{'':>6}{'log: ' if j == 0 else '     '}{line}")
            for line in step.diff:
                print(f"{'':>6}{line}")
    guard = replay.router.guard
    faults = ", ".join(f"{n}={c}" for n, c in sorted(guard.faults.items()))
    off = ", ".join(sorted(guard.disabled))
    print(f"{len(records)} packets; helper faults: {faults or 'none'}"
          + (f"; switched off: {off}" if off else ""), file=sys.stderr)
    return 1 if guard.faults else 0
