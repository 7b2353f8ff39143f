"""Control-socket command `top`: the busiest connections, for `tunrouter top`.

Ranked by bytes in both directions, which needs nf_conntrack_acct: with it
off the answer says so and carries the port counters only.
"""
import time

from tunrouter.conntrack.format import PROTO_NAMES, tuple_text


def top_handlers(router, port_names: list[str]) -> dict:
    def top(req):
        n = int(req.get("n", 20))
        now = time.monotonic()
        table = router.conntrack
        rows = []
        if table.settings.acct:
            live = [ct for ct in table.conns(now) if ct.acct is not None]
            live.sort(key=lambda ct: ct.acct[1] + ct.acct[3], reverse=True)
            for ct in live[:n]:
                a = ct.acct
                rows.append({"id": ct.id, "proto": PROTO_NAMES.get(ct.orig[2], str(ct.orig[2])),
                             "state": ct.state.name if ct.state is not None else "",
                             "orig": tuple_text(ct.orig), "reply": tuple_text(ct.reply),
                             "packets": [a[0], a[2]], "bytes": [a[1], a[3]]})
        c = router.counters
        ports = {name: [c.rx_bytes[i], c.tx_bytes[i], c.rx_packets[i], c.tx_packets[i]]
                 for i, name in enumerate(port_names)}
        return {"acct": bool(table.settings.acct), "entries": table.count(), "conns": rows,
                "ports": ports, "t": now}

    return {"top": top}
