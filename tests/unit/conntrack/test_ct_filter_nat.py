"""conntrack -L --src-nat / --dst-nat / --any-nat [IP]: NATed entries by their status and mapping."""
import pytest

from tunrouter.conntrack.conn import IPS_DST_NAT, IPS_SRC_NAT, Conn
from tunrouter.conntrack.filter import make_filter


def addr(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def conn(orig, reply, status) -> Conn:
    c = Conn((addr(orig[0]), addr(orig[1]), 17, orig[2], orig[3]),
             (addr(reply[0]), addr(reply[1]), 17, reply[2], reply[3]))
    c.status = status
    return c


PLAIN = conn(("10.0.0.2", "1.1.1.1", 5000, 53), ("1.1.1.1", "10.0.0.2", 53, 5000), 0)
MASQ = conn(("10.0.0.2", "1.1.1.1", 5001, 53), ("1.1.1.1", "198.51.100.1", 53, 5001), IPS_SRC_NAT)
FWD = conn(("1.1.1.1", "198.51.100.1", 4000, 8080), ("10.0.0.3", "1.1.1.1", 80, 4000), IPS_DST_NAT)
ALL = [PLAIN, MASQ, FWD]


@pytest.mark.parametrize("spec,want", [
    ({"src_nat": True}, [MASQ]),
    ({"dst_nat": True}, [FWD]),
    ({"any_nat": True}, [MASQ, FWD]),
    ({"src_nat": "198.51.100.1"}, [MASQ]),
    ({"src_nat": "198.51.100.2"}, []),
    ({"dst_nat": "10.0.0.3"}, [FWD]),
    ({"any_nat": "10.0.0.3"}, [FWD]),
    ({"src_nat": True, "dst_nat": True}, []),
])
def test_nat_filters_select_by_status_and_mapped_address(spec, want):
    f = make_filter(spec)
    assert [c for c in ALL if f(c)] == want


def test_nat_filter_wants_one_address():
    with pytest.raises(ValueError, match="must be one address"):
        make_filter({"src_nat": "10.0.0.0/8"})
