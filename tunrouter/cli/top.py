"""`tunrouter top`: the busiest connections and the ports' rates, refreshed in place.

Connections are ranked by bytes (both directions) and shown with their rate
since the last refresh; that needs per-connection counters, which cost
memory and time per packet and are off by default, as nf_conntrack_acct is
in the kernel:  tunrouter sysctl --lab NAME nf_conntrack_acct=1
"""
import argparse
import sys
import time

from tunrouter.driver.control import request


def add_parsers(sub, add_target, resolve) -> None:
    p = sub.add_parser("top", help="a live view of the busiest connections and the port rates",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target(p)
    p.add_argument("-n", type=int, default=15, help="connections shown (default 15)")
    p.add_argument("-i", "--interval", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true",
                   help="print two samples' worth (one interval apart) once and exit")
    p.set_defaults(func=lambda a: run_top(a, resolve(a)))


def _rate(b: float) -> str:
    for unit in ("B/s", "kB/s", "MB/s", "GB/s"):
        if b < 1000:
            return f"{b:7.1f} {unit}"
        b /= 1000
    return f"{b:7.1f} TB/s"


def render(prev: dict, cur: dict, width: int = 160) -> list[str]:
    dt = max(cur["t"] - prev["t"], 1e-6)
    lines = [f"tunrouter top: {cur['entries']} connections tracked, every {dt:.1f} s", "",
             f"{'port':<10}{'rx':>14}{'tx':>14}{'rx pkt/s':>12}{'tx pkt/s':>12}"]
    for name, (rxb, txb, rxp, txp) in cur["ports"].items():
        o = prev["ports"].get(name, (rxb, txb, rxp, txp))
        lines.append(f"{name:<10}{_rate((rxb - o[0]) / dt):>14}{_rate((txb - o[1]) / dt):>14}"
                     f"{(rxp - o[2]) / dt:>12.0f}{(txp - o[3]) / dt:>12.0f}")
    lines.append("")
    if not cur["acct"]:
        lines.append("per-connection counters are off: "
                     "tunrouter sysctl ... nf_conntrack_acct=1 turns them on")
        return lines
    before = {c["id"]: sum(c["bytes"]) for c in prev["conns"]}
    lines.append(f"{'proto':<6}{'state':<12}{'rate':>14}{'bytes':>12}{'packets':>10}  connection")
    for c in cur["conns"]:
        total = sum(c["bytes"])
        rate = (total - before.get(c["id"], total)) / dt
        lines.append(f"{c['proto']:<6}{c['state']:<12}{_rate(rate):>14}{total:>12}"
                     f"{sum(c['packets']):>10}  {c['orig']}"[:width])
    return lines


def run_top(args, sock: str) -> int:
    prev = request(sock, "top", n=args.n)
    try:
        while True:
            time.sleep(args.interval)
            cur = request(sock, "top", n=args.n)
            out = render(prev, cur)
            if args.once:
                print("\n".join(out))
                return 0
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(out) + "\n")
            sys.stdout.flush()
            prev = cur
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
