"""The conntrack knobs, by their kernel sysctl names (net.netfilter.nf_conntrack_*).

Settings holds them as plain attributes the trackers read per packet; get()
and set() are the by-name interface for configuration and the control
socket.  set() refuses unknown names and out-of-range values, as the kernel's
proc handlers do (EINVAL), and is stricter in one place: the kernel accepts
a negative timeout (proc_dointvec_jiffies), which makes no sense and is
refused here.  Defaults are the reference kernel's, except nf_conntrack_max,
which the kernel sizes from RAM (262144 on the reference machine); a Python
entry costs far more than the kernel's, so the default here is 65536.

Left out: knobs of features tunrouter does not have (accounting,
timestamps, buckets, IPv6, SCTP, flowtables) and nf_conntrack_count,
which is read-only (ConnTable.count()).
"""
from tunrouter.conntrack.proto.tcp import TCP_TIMEOUTS, TcpState

# proc_dointvec_jiffies refuses seconds above INT_MAX / HZ (CONFIG_HZ=250 on the reference).
TIMEOUT_MAX = (2**31 - 1) // 250
INT_MAX = 2**31 - 1

_TCP_TIMEOUT_NAMES = {
    "nf_conntrack_tcp_timeout_syn_sent": TcpState.SYN_SENT,
    "nf_conntrack_tcp_timeout_syn_recv": TcpState.SYN_RECV,
    "nf_conntrack_tcp_timeout_established": TcpState.ESTABLISHED,
    "nf_conntrack_tcp_timeout_fin_wait": TcpState.FIN_WAIT,
    "nf_conntrack_tcp_timeout_close_wait": TcpState.CLOSE_WAIT,
    "nf_conntrack_tcp_timeout_last_ack": TcpState.LAST_ACK,
    "nf_conntrack_tcp_timeout_time_wait": TcpState.TIME_WAIT,
    "nf_conntrack_tcp_timeout_close": TcpState.CLOSE,
    "nf_conntrack_tcp_timeout_max_retrans": TcpState.RETRANS,
    "nf_conntrack_tcp_timeout_unacknowledged": TcpState.UNACK,
}

# name: (attribute, default, lowest, highest)
SYSCTLS = {
    "nf_conntrack_max": ("max", 65536, 0, INT_MAX),                  # 0: no limit
    "nf_conntrack_checksum": ("checksum", 1, 0, 1),
    "nf_conntrack_events": ("events", 2, 0, 2),                      # 0 off; 1, 2 on
    "nf_conntrack_acct": ("acct", 0, 0, 1),                          # per-connection counters
    "nf_conntrack_generic_timeout": ("generic_timeout", 600, 0, TIMEOUT_MAX),
    "nf_conntrack_gre_timeout": ("gre_timeout", 30, 0, TIMEOUT_MAX),
    "nf_conntrack_gre_timeout_stream": ("gre_timeout_stream", 180, 0, TIMEOUT_MAX),
    "nf_conntrack_icmp_timeout": ("icmp_timeout", 30, 0, TIMEOUT_MAX),
    "nf_conntrack_udp_timeout": ("udp_timeout", 30, 0, TIMEOUT_MAX),
    "nf_conntrack_udp_timeout_stream": ("udp_timeout_stream", 120, 0, TIMEOUT_MAX),
    "nf_conntrack_tcp_loose": ("tcp_loose", 1, 0, 1),
    "nf_conntrack_tcp_be_liberal": ("tcp_be_liberal", 0, 0, 1),
    "nf_conntrack_tcp_ignore_invalid_rst": ("tcp_ignore_invalid_rst", 0, 0, 1),
    "nf_conntrack_tcp_max_retrans": ("tcp_max_retrans", 3, 0, 255),
    # the kernel's default is 4 * (buckets / 256): 1024 for a 65536-entry table
    "nf_conntrack_expect_max": ("expect_max", 1024, 1, INT_MAX),
    **{name: ("tcp_timeouts", TCP_TIMEOUTS[state], 0, TIMEOUT_MAX)
       for name, state in _TCP_TIMEOUT_NAMES.items()},
}


class Settings:
    """The sysctls as attributes; tcp_timeouts is a list indexed by TcpState.

    tcp_timeouts[NONE] is the SYN_SENT value (the kernel's timeouts[0], "new")
    and the INVALID and IGNORE slots are unused, so that every TcpState,
    RETRANS and UNACK included, indexes it directly.
    """
    __slots__ = (
        "acct",
        "checksum",
        "events",
        "expect_max",
        "generic_timeout",
        "gre_timeout",
        "gre_timeout_stream",
        "icmp_timeout",
        "max",
        "tcp_be_liberal",
        "tcp_ignore_invalid_rst",
        "tcp_loose",
        "tcp_max_retrans",
        "tcp_timeouts",
        "udp_timeout",
        "udp_timeout_stream",
    )

    def __init__(self, **sysctls: int):
        for attr, default, _lo, _hi in SYSCTLS.values():
            if attr != "tcp_timeouts":
                setattr(self, attr, default)
        self.tcp_timeouts = [0] * (max(TcpState) + 1)
        for state, seconds in TCP_TIMEOUTS.items():
            self.tcp_timeouts[state] = seconds
        self.tcp_timeouts[TcpState.NONE] = TCP_TIMEOUTS[TcpState.SYN_SENT]
        for name, value in sysctls.items():
            self.set(name, value)

    def get(self, name: str) -> int:
        attr = self._entry(name)[0]
        if attr == "tcp_timeouts":
            return self.tcp_timeouts[_TCP_TIMEOUT_NAMES[name]]
        return getattr(self, attr)

    def set(self, name: str, value: int | str) -> None:
        """Set one sysctl; value is an int or its decimal text, as `sysctl -w` takes it."""
        attr, _default, lo, hi = self._entry(name)
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not an integer") from None
        elif type(value) is not int:
            raise ValueError(f"{name}: {value!r} is not an integer")
        if not lo <= value <= hi:
            raise ValueError(f"{name}: {value} is out of range [{lo}, {hi}]")
        if attr == "tcp_timeouts":
            self.tcp_timeouts[_TCP_TIMEOUT_NAMES[name]] = value
            if name == "nf_conntrack_tcp_timeout_syn_sent":
                self.tcp_timeouts[TcpState.NONE] = value
        else:
            setattr(self, attr, value)

    def items(self) -> list[tuple[str, int]]:
        """Every sysctl and its value, sorted by name (`sysctl net.netfilter`)."""
        return [(name, self.get(name)) for name in sorted(SYSCTLS)]

    @staticmethod
    def _entry(name: str) -> tuple[str, int, int, int]:
        try:
            return SYSCTLS[name]
        except KeyError:
            raise ValueError(f"unknown conntrack sysctl {name!r}") from None
