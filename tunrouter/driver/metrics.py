"""An optional Prometheus endpoint: the router's counters under Prometheus names.

    tunrouter_packets_total{port, direction}     frames read (rx) and written (tx) per port
    tunrouter_bytes_total{port, direction}
    tunrouter_drops_total{reason}                 packets dropped, by drop reason
    tunrouter_forwarded_total, tunrouter_local_total, tunrouter_icmp_sent_total,
    tunrouter_icmp_ratelimited_total, tunrouter_fragments_out_total
    tunrouter_conntrack_entries, tunrouter_conntrack_max
    tunrouter_expectations                        live conntrack expectations
    tunrouter_helper_faults_total{helper}, tunrouter_helper_enabled{helper}
    tunrouter_reassembly_queues, tunrouter_reassembly_memory_bytes

Served by prometheus-client's HTTP server in a thread; a scrape reads the
same snapshot `tunrouter stats` does.  The snapshot is taken while the loop
runs: counters are plain integers, so a scrape may see one packet's
updates half done, never a torn number.
"""
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class RouterCollector:
    def __init__(self, stats: Callable[[], dict]):
        self.stats = stats

    def _snapshot(self) -> dict:
        for _ in range(3):
            try:
                return self.stats()
            except RuntimeError:           # a dict grew under us (a new helper fault): again
                continue
        return self.stats()

    def collect(self):
        s = self._snapshot()
        packets = CounterMetricFamily("tunrouter_packets", "Frames crossing a port.",
                                      labels=["port", "direction"])
        nbytes = CounterMetricFamily("tunrouter_bytes", "Bytes crossing a port.",
                                     labels=["port", "direction"])
        for port, p in s["ports"].items():
            for direction in ("rx", "tx"):
                packets.add_metric([port, direction], p[f"{direction}_packets"])
                nbytes.add_metric([port, direction], p[f"{direction}_bytes"])
        yield packets
        yield nbytes
        drops = CounterMetricFamily("tunrouter_drops", "Packets dropped, by reason.",
                                    labels=["reason"])
        for reason, n in s["drops"].items():
            drops.add_metric([reason], n)
        yield drops
        for key, text in (("forwarded", "Packets forwarded."),
                          ("local", "Packets for the router itself."),
                          ("icmp_sent", "ICMP messages the router sent."),
                          ("icmp_ratelimited", "ICMP errors not sent: rate limit."),
                          ("fragments_out", "Fragments the router made.")):
            yield CounterMetricFamily(f"tunrouter_{key}", text, value=s[key])
        yield GaugeMetricFamily("tunrouter_conntrack_entries", "Tracked connections.",
                                value=s["conntrack"]["entries"])
        yield GaugeMetricFamily("tunrouter_conntrack_max", "nf_conntrack_max.",
                                value=s["conntrack"]["max"])
        h = s["helpers"]
        yield GaugeMetricFamily("tunrouter_expectations", "Live conntrack expectations.",
                                value=h["expectations"])
        faults = CounterMetricFamily("tunrouter_helper_faults", "Faults of a conntrack helper.",
                                     labels=["helper"])
        enabled = GaugeMetricFamily("tunrouter_helper_enabled",
                                    "1 while a helper runs, 0 once switched off.", labels=["helper"])
        for name in h["loaded"]:
            faults.add_metric([name], h["faults"].get(name, 0))
            enabled.add_metric([name], 0 if name in h["disabled"] else 1)
        yield faults
        yield enabled
        r = s["reassembly"]
        yield GaugeMetricFamily("tunrouter_reassembly_queues", "Datagrams being reassembled.",
                                value=r["queues"])
        yield GaugeMetricFamily("tunrouter_reassembly_memory_bytes",
                                "Memory held by reassembly.", value=r["mem"])


def serve(listen: tuple[str, int], stats: Callable[[], dict]):
    """Start the endpoint on (address, port); returns the server (server.shutdown() stops it)."""
    registry = CollectorRegistry()
    registry.register(RouterCollector(stats))
    server, _thread = start_http_server(listen[1], listen[0], registry=registry)
    return server
