"""`tunrouter iptables-restore`, `iptables-save` and `iptables -L/-Z`: iptables' own words.

Each talks to a running router over its control socket (like `tunrouter
conntrack`); the router makes the text.  `iptables-restore --test` without
--lab/--router/--socket checks the file here, with no router at all.
"""
import sys

from tunrouter.driver.control import ControlError, request

TABLES = ("filter", "nat", "raw")


def _has_target(args) -> bool:
    return bool(args.lab or args.router or args.socket)


def add_parsers(sub, add_target, resolve) -> None:
    p = sub.add_parser(
        "iptables-restore", help="load an iptables-save ruleset into a running router (atomic)",
        description="iptables-restore(8) against a running router.  The whole file is checked "
                    "first: a file with an error changes nothing and the error names the line. "
                    "Connection tracking state is kept.")
    add_target(p, short=False)
    p.add_argument("-t", "--test", action="store_true",
                   help="only parse and check; without --lab/--router/--socket, "
                        "offline (no router needed)")
    p.add_argument("-n", "--noflush", action="store_true",
                   help="keep the rules of the tables the file names; append to them")
    p.add_argument("-c", "--counters", action="store_true",
                   help="restore the [packets:bytes] counters the file gives")
    p.add_argument("file", metavar="FILE", help='the ruleset, or "-" for standard input')
    p.set_defaults(func=lambda a: _restore(a, resolve))

    p = sub.add_parser("iptables-save", help="print a running router's ruleset as iptables-save does",
                       description="iptables-save(8) against a running router.")
    add_target(p, short=False)
    p.add_argument("-c", "--counters", action="store_true",
                   help="include packet and byte counters of every rule")
    p.add_argument("-t", "--table", choices=TABLES, help="only this table")
    p.set_defaults(func=lambda a: _save(a, resolve(a)))

    p = sub.add_parser("iptables", help="list (-L) or zero (-Z) a running router's rules and counters",
                       description="iptables(8) -L and -Z against a running router.")
    add_target(p, short=False)
    p.add_argument("-t", "--table", choices=TABLES, default="filter",
                   help="the table (default filter)")
    p.add_argument("-L", "--list", dest="list", nargs="?", const="", default=None,
                   metavar="CHAIN", help="list the rules of CHAIN, or of every chain")
    p.add_argument("-Z", "--zero", dest="zero", nargs="?", const="", default=None,
                   metavar="CHAIN", help="zero the counters of CHAIN, or of every chain")
    p.add_argument("-n", "--numeric", action="store_true",
                   help="addresses, protocols and ports as numbers")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="counters, interfaces and policy counters")
    p.add_argument("-x", "--exact", action="store_true", help="exact counter values")
    p.add_argument("--line-numbers", action="store_true", help="number the rules")
    p.set_defaults(func=lambda a: _iptables(a, resolve))


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ControlError(f"{path}: cannot read: {e.strerror}")
    except UnicodeDecodeError:
        raise ControlError(f"{path}: not text (UTF-8)")


def _restore(args, resolve) -> int:
    name = "standard input" if args.file == "-" else args.file
    text = _read(args.file)
    if args.test and not _has_target(args):
        from tunrouter.rules import RuleSyntaxError, restore

        try:
            restore(text, noflush=args.noflush, counters=args.counters)
        except RuleSyntaxError as e:
            print(f"tunrouter iptables-restore: {name}: {e}", file=sys.stderr)
            return 1
        return 0
    sock = resolve(args)
    try:
        request(sock, "ipt_restore", timeout=30.0, text=text, test=args.test,
                noflush=args.noflush, counters=args.counters)
    except ControlError as e:
        print(f"tunrouter iptables-restore: {name}: {e}", file=sys.stderr)
        return 1
    return 0


def _save(args, sock) -> int:
    sys.stdout.write(request(sock, "ipt_save", counters=args.counters, table=args.table))
    return 0


def _iptables(args, resolve) -> int:
    if args.list is None and args.zero is None:
        print("tunrouter iptables: one of -L or -Z is needed (this router supports "
              "-L, -Z and -L -Z; change rules with tunrouter iptables-restore)", file=sys.stderr)
        return 2
    sock = resolve(args)
    try:
        if args.list is not None:
            sys.stdout.write(request(sock, "ipt_list", table=args.table, chain=args.list or None,
                                     numeric=args.numeric, verbose=args.verbose,
                                     exact=args.exact, line_numbers=args.line_numbers))
        if args.zero is not None:
            request(sock, "ipt_zero", table=args.table, chain=args.zero or None)
    except ControlError as e:
        print(f"tunrouter iptables: {e}", file=sys.stderr)
        return 1
    return 0
