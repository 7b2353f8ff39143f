"""Settings: the conntrack sysctls by their kernel names."""
import pytest

from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.conntrack.settings import SYSCTLS, TIMEOUT_MAX, Settings

# The reference machine's `sysctl net.netfilter` (Linux 6.18, fresh namespace),
# except nf_conntrack_max, which the kernel sizes from RAM.
KERNEL_DEFAULTS = {
    "nf_conntrack_acct": 0,
    "nf_conntrack_checksum": 1,
    "nf_conntrack_events": 2,
    "nf_conntrack_generic_timeout": 600,
    "nf_conntrack_icmp_timeout": 30,
    "nf_conntrack_tcp_be_liberal": 0,
    "nf_conntrack_tcp_ignore_invalid_rst": 0,
    "nf_conntrack_tcp_loose": 1,
    "nf_conntrack_tcp_max_retrans": 3,
    "nf_conntrack_tcp_timeout_close": 10,
    "nf_conntrack_tcp_timeout_close_wait": 60,
    "nf_conntrack_tcp_timeout_established": 432000,
    "nf_conntrack_tcp_timeout_fin_wait": 120,
    "nf_conntrack_tcp_timeout_last_ack": 30,
    "nf_conntrack_tcp_timeout_max_retrans": 300,
    "nf_conntrack_tcp_timeout_syn_recv": 60,
    "nf_conntrack_tcp_timeout_syn_sent": 120,
    "nf_conntrack_tcp_timeout_time_wait": 120,
    "nf_conntrack_tcp_timeout_unacknowledged": 300,
    "nf_conntrack_udp_timeout": 30,
    "nf_conntrack_udp_timeout_stream": 120,
    "nf_conntrack_gre_timeout": 30,
    "nf_conntrack_gre_timeout_stream": 180,
}


def test_defaults_are_the_kernels():
    s = Settings()
    assert {name: s.get(name) for name in KERNEL_DEFAULTS} == KERNEL_DEFAULTS
    assert s.get("nf_conntrack_max") == 65536


def test_items_cover_every_sysctl_sorted():
    names = [name for name, _ in Settings().items()]
    # nf_conntrack_max and nf_conntrack_expect_max: the kernel sizes them from RAM
    assert names == sorted(SYSCTLS) == sorted([*KERNEL_DEFAULTS, "nf_conntrack_max",
                                               "nf_conntrack_expect_max"])


def test_set_then_get():
    s = Settings()
    s.set("nf_conntrack_tcp_timeout_established", 7200)
    assert s.get("nf_conntrack_tcp_timeout_established") == 7200
    assert s.tcp_timeouts[TcpState.ESTABLISHED] == 7200


def test_set_syn_sent_also_sets_new_timeout():
    s = Settings(nf_conntrack_tcp_timeout_syn_sent=30)
    assert s.tcp_timeouts[TcpState.NONE] == s.tcp_timeouts[TcpState.SYN_SENT] == 30


def test_set_accepts_sysctl_text():
    s = Settings()
    s.set("nf_conntrack_tcp_loose", " 0\n")
    assert s.tcp_loose == 0


def test_constructor_takes_names():
    assert Settings(nf_conntrack_max=10, nf_conntrack_tcp_be_liberal=1).max == 10


@pytest.mark.parametrize("name", ["nf_conntrack_helper", "tcp_loose", "net.netfilter.nf_conntrack_max",
                                  "nf_conntrack_count", "nf_conntrack_buckets"])
def test_unknown_name_refused(name):
    with pytest.raises(ValueError, match="unknown conntrack sysctl"):
        Settings().set(name, 1)
    with pytest.raises(ValueError, match="unknown conntrack sysctl"):
        Settings().get(name)


@pytest.mark.parametrize("name,value", [
    ("nf_conntrack_tcp_loose", 2),                       # the kernel: EINVAL
    ("nf_conntrack_tcp_loose", -1),
    ("nf_conntrack_tcp_be_liberal", 2),
    ("nf_conntrack_tcp_ignore_invalid_rst", 2),
    ("nf_conntrack_tcp_max_retrans", 256),
    ("nf_conntrack_checksum", 2),
    ("nf_conntrack_events", 3),
    ("nf_conntrack_generic_timeout", 99999999),          # above INT_MAX / HZ
    ("nf_conntrack_udp_timeout", TIMEOUT_MAX + 1),
    ("nf_conntrack_udp_timeout", -5),                    # the kernel takes it; we do not
    ("nf_conntrack_max", -1),
    ("nf_conntrack_udp_timeout", "30s"),
    ("nf_conntrack_udp_timeout", 1.5),
    ("nf_conntrack_tcp_loose", True),
    ("nf_conntrack_udp_timeout", None),
])
def test_bad_value_refused(name, value):
    s = Settings()
    before = s.get(name)
    with pytest.raises(ValueError, match=name):
        s.set(name, value)
    assert s.get(name) == before


@pytest.mark.parametrize("name,value", [
    ("nf_conntrack_tcp_max_retrans", 255), ("nf_conntrack_tcp_max_retrans", 0),
    ("nf_conntrack_udp_timeout", 0), ("nf_conntrack_udp_timeout", TIMEOUT_MAX),
    ("nf_conntrack_events", 2), ("nf_conntrack_max", 0),
])
def test_edge_values_accepted(name, value):
    s = Settings()
    s.set(name, value)
    assert s.get(name) == value
