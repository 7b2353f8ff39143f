"""`tunrouter conntrack` and `tunrouter sysctl`: conntrack-tools' and sysctl's words.

The options are conntrack(8)'s, so a command line written for a kernel
router works against a tunrouter router with the target options added.
Entries and events are formatted by the router, byte for byte as
conntrack-tools prints them; the summary lines go to stderr as conntrack's do.
"""
import sys

from tunrouter import __version__
from tunrouter.driver.control import ControlError, request, subscribe

SUMMARY = f"tunrouter v{__version__} (conntrack-tools format)"
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "gre": 47, "sctp": 132, "udplite": 136}
EVENTS = ("NEW", "UPDATE", "DESTROY")


def add_parsers(sub, add_target, resolve) -> None:
    """Add `conntrack` and `sysctl`; resolve(args) names the router's control socket."""
    p = sub.add_parser(
        "conntrack", help="list, watch, delete and count tracked connections (conntrack-tools' options)",
        description="conntrack(8) against a running router: -L, -E, -D, -F, -C, -S with its filters.")
    add_target(p, short=False)       # -s, -r are conntrack's own filters
    cmd = p.add_argument_group("commands (one)").add_mutually_exclusive_group(required=True)
    cmd.add_argument("-L", "--dump", dest="command", action="store_const", const="list",
                     help="list the connection tracking table")
    cmd.add_argument("-E", "--event", dest="command", action="store_const", const="events",
                     help="show events as they happen, until interrupted")
    cmd.add_argument("-D", "--delete", dest="command", action="store_const", const="delete",
                     help="delete the entries that match the filters (all without filters)")
    cmd.add_argument("-F", "--flush", dest="command", action="store_const", const="flush",
                     help="empty the table")
    cmd.add_argument("-C", "--count", dest="command", action="store_const", const="count",
                     help="print the number of entries")
    cmd.add_argument("-S", "--stats", dest="command", action="store_const", const="stats",
                     help="print the statistics counters")
    p.add_argument("table", nargs="?", choices=["conntrack", "expect"], default="conntrack",
                   help="the table: conntrack (default) or expect (with -L: the expectations)")
    f = p.add_argument_group("filters (conntrack(8)'s)")
    f.add_argument("-p", "--protonum", "--proto", dest="protonum", metavar="PROTO",
                   help="layer 4 protocol: tcp, udp, icmp or a number")
    f.add_argument("-s", "--src", "--orig-src", dest="orig_src", metavar="IP[/LEN]")
    f.add_argument("-d", "--dst", "--orig-dst", dest="orig_dst", metavar="IP[/LEN]")
    f.add_argument("-r", "--reply-src", dest="reply_src", metavar="IP[/LEN]")
    f.add_argument("-q", "--reply-dst", dest="reply_dst", metavar="IP[/LEN]")
    f.add_argument("--sport", "--orig-port-src", dest="orig_port_src", type=int, metavar="PORT")
    f.add_argument("--dport", "--orig-port-dst", dest="orig_port_dst", type=int, metavar="PORT")
    f.add_argument("--reply-port-src", dest="reply_port_src", type=int, metavar="PORT")
    f.add_argument("--reply-port-dst", dest="reply_port_dst", type=int, metavar="PORT")
    f.add_argument("--icmp-type", dest="icmp_type", type=int, metavar="TYPE")
    f.add_argument("--icmp-code", dest="icmp_code", type=int, metavar="CODE")
    f.add_argument("--icmp-id", dest="icmp_id", type=int, metavar="ID")
    f.add_argument("--state", metavar="STATE", help="TCP state, e.g. ESTABLISHED")
    f.add_argument("-u", "--status", metavar="STATUS[,...]", help="ASSURED, SEEN_REPLY or UNSET")
    f.add_argument("-m", "--mark", metavar="MARK[/MASK]")
    for short, long, what in (("-n", "--src-nat", "source"), ("-g", "--dst-nat", "destination"),
                              ("-j", "--any-nat", "source or destination")):
        f.add_argument(short, long, dest=long[2:].replace("-", "_"), nargs="?", const=True,
                       metavar="IP", help=f"{what} NAT connections (translated to IP, if given)")
    p.add_argument("-e", "--event-mask", metavar="EVENT[,...]",
                   help="with -E: which events, of NEW, UPDATE, DESTROY (default all)")
    p.add_argument("-o", "--output", metavar="FORMAT[,...]",
                   help="extended (prefix the layer 3 family) and/or id (append id=)")
    p.set_defaults(func=lambda a: run_conntrack(a, resolve(a)))

    s = sub.add_parser("sysctl", help="read or set the router's conntrack knobs by their kernel names",
                       description="Like sysctl(8) for net.netfilter.nf_conntrack_*: NAME reads, "
                                   "NAME=VALUE sets, nothing lists them all.")
    add_target(s, short=False)
    s.add_argument("settings", nargs="*", metavar="NAME[=VALUE]",
                   help="e.g. net.netfilter.nf_conntrack_tcp_timeout_established=3600")
    s.set_defaults(func=lambda a: run_sysctl(a, resolve(a)))


def _number(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise SystemExit(f"tunrouter conntrack: {what} {text!r} is not a number")


def filter_spec(args) -> dict:
    """The filter dict the router's conntrack.filter.make_filter() takes."""
    spec = {}
    if args.protonum is not None:
        proto = args.protonum.lower()
        spec["protonum"] = PROTOCOLS[proto] if proto in PROTOCOLS else _number(proto, "protocol")
    for key in ("orig_src", "orig_dst", "reply_src", "reply_dst", "orig_port_src", "orig_port_dst",
                "reply_port_src", "reply_port_dst", "icmp_type", "icmp_code", "icmp_id", "state",
                "src_nat", "dst_nat", "any_nat"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    if args.status:
        spec["status"] = [s.strip().upper() for s in args.status.split(",")]
    if args.mark:
        value, _, mask = args.mark.partition("/")
        spec["mark"] = [_number(value, "mark"), _number(mask, "mark mask") if mask else 0xFFFFFFFF]
    return spec


def _output(args) -> list[str]:
    formats = [f.strip() for f in args.output.split(",")] if args.output else []
    for f in formats:
        if f not in ("extended", "id"):
            raise SystemExit(f"tunrouter conntrack: output format {f!r} is not supported; "
                             "use extended and/or id")
    return formats


def run_conntrack(args, sock: str) -> int:
    if args.event_mask and args.command != "events":
        raise SystemExit("tunrouter conntrack: --event-mask goes with -E")
    spec = filter_spec(args)
    if args.command in ("flush", "count", "stats") and spec:
        raise SystemExit(f"tunrouter conntrack: -{args.command[0].upper()} takes no filters")
    if args.table == "expect":
        if args.command not in ("list", "events"):
            raise SystemExit("tunrouter conntrack: the expect table is listed (-L expect) "
                             "or watched (-E expect)")
        if spec or args.output or args.event_mask:
            raise SystemExit("tunrouter conntrack: expect takes no filters, masks or output formats")
        if args.command == "list":
            lines = request(sock, "ct_expect_list")
            _print(lines)
            print(f"{SUMMARY}: {len(lines)} expectations have been shown.", file=sys.stderr)
            return 0
        shown = 0
        try:
            for line in subscribe(sock, "ct_expect_events"):
                print(line, flush=True)
                shown += 1
        except (KeyboardInterrupt, BrokenPipeError):
            pass
        print(f"{SUMMARY}: {shown} expectation events have been shown.", file=sys.stderr)
        return 0
    if args.command == "list":
        lines = request(sock, "ct_list", filter=spec, output=_output(args))
        _print(lines)
        print(f"{SUMMARY}: {len(lines)} flow entries have been shown.", file=sys.stderr)
        return 0
    if args.command == "delete":
        lines = request(sock, "ct_delete", filter=spec, output=_output(args))
        _print(lines)
        print(f"{SUMMARY}: {len(lines)} flow entries have been deleted.", file=sys.stderr)
        return 0 if lines else 1
    if args.command == "flush":
        request(sock, "ct_flush")
        print(f"{SUMMARY}: connection tracking table has been emptied.", file=sys.stderr)
        return 0
    if args.command == "count":
        print(request(sock, "ct_count"))
        return 0
    if args.command == "stats":
        _print(request(sock, "ct_stats"))
        return 0
    mask = [e.strip().upper() for e in args.event_mask.split(",")] if args.event_mask else list(EVENTS)
    bad = [e for e in mask if e not in EVENTS]
    if bad:
        raise SystemExit(f"tunrouter conntrack: unknown event {bad[0]!r}; events: {', '.join(EVENTS)}")
    shown = 0
    try:
        for line in subscribe(sock, "ct_events", filter=spec, events=mask, output=_output(args)):
            print(line, flush=True)
            shown += 1
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    print(f"{SUMMARY}: {shown} flow events have been shown.", file=sys.stderr)
    return 0


def _print(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


PREFIX = "net.netfilter."


def run_sysctl(args, sock: str) -> int:
    """sysctl(8)'s output: `name = value`, names with their net.netfilter. prefix."""
    items = []
    for item in args.settings:
        name, eq, value = item.partition("=")
        items.append([name.strip().removeprefix(PREFIX), value.strip() if eq else None])
    try:
        result = request(sock, "sysctl", items=items)
    except ControlError as e:
        print(f"tunrouter sysctl: {e}", file=sys.stderr)
        return 1
    for name, value in result:
        print(f"{PREFIX}{name} = {value}")
    return 0

