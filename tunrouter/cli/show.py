"""Text for people: counters in the spirit of `pfctl -si`, lab status."""
import time


def stats(router: str, s: dict) -> str:
    lines = [f"Router {router}", "",
             f"{'Ports':<20}{'rx packets':>14}{'rx bytes':>16}{'tx packets':>14}{'tx bytes':>16}"]
    for name, p in s["ports"].items():
        lines.append(f"  {name:<18}{p['rx_packets']:>14}{p['rx_bytes']:>16}"
                     f"{p['tx_packets']:>14}{p['tx_bytes']:>16}")
    lines += ["", "Packets"]
    for key, label in (("forwarded", "forwarded"), ("local", "to the router"),
                       ("arp", "arp"), ("icmp_sent", "icmp sent"),
                       ("icmp_ratelimited", "icmp rate-limited"), ("fragments_out", "fragments made")):
        lines.append(f"  {label:<30}{s[key]:>14}")
    ct = s["conntrack"]
    lines += ["", "Connection tracking",
              f"  {'entries':<30}{ct['entries']:>14}",
              f"  {'maximum':<30}{ct['max']:>14}"]
    r = s["reassembly"]
    lines += ["", "Reassembly"]
    for key, label in (("ReasmReqds", "fragments received"), ("ReasmOKs", "datagrams reassembled"),
                       ("ReasmFails", "datagrams given up"), ("ReasmTimeout", "timed out"),
                       ("queues", "in progress"), ("mem", "memory in use (bytes)")):
        lines.append(f"  {label:<30}{r[key]:>14}")
    rules = s.get("rules")
    if rules is not None:
        lines += ["", "Rules"]
        for key, label in (("hotdrops", "hotdrops"), ("log_written", "LOG lines written"),
                           ("log_lost", "LOG lines lost")):
            lines.append(f"  {label:<30}{rules[key]:>14}")
    helpers = s.get("helpers")
    if helpers is not None:
        lines += ["", "Helpers"]
        lines.append(f"  {'expectations':<30}{helpers['expectations']:>14}")
        for name in helpers.get("loaded", []):
            state = "switched off" if name in helpers["disabled"] else "on"
            lines.append(f"  {name:<18}{state:>12}{helpers['faults'].get(name, 0):>14} faults")
    lines += ["", "Drops"]
    for reason, n in s["drops"].items():
        lines.append(f"  {reason:<30}{n:>14}")
    return "\n".join(lines)


def lab_status(labs: list[dict]) -> str:
    if not labs:
        return "no labs are up"
    out = []
    for lab in labs:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lab["started"]))
        out.append(f"lab {lab['name']} ({lab['file']}), up since {since}")
        for name, r in lab["routers"].items():
            state = "running" if r["alive"] else f"NOT RUNNING (log: {r['log']})"
            out.append(f"  router {name:<12} pid {r['pid']:<8} {state}  control {r['socket']}")
        for ns, present in lab["namespaces"].items():
            out.append(f"  netns  {ns:<20} {'present' if present else 'MISSING'}")
        for host, procs in lab["hosts"].items():
            for p in procs:
                state = "running" if p["alive"] else "exited"
                out.append(f"  host   {host:<12} pid {p['pid']:<8} {state:<8} {p['cmd']}")
    return "\n".join(out)
