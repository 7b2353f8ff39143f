"""The TCP state table, cell by cell.

Two checks.  TCP_CONNTRACKS against the reference's transcription of the
current kernel's tcp_conntracks (CONNTRACK-REFERENCE.md §1.2, copied below),
for all 2 x 6 x 10 cells.  And every reachable cell walked with real segments
(9 states x 2 directions x 6 segment classes, plus the first packet), the
outcome compared with what Linux 6.18 did with the same segments: the state,
timeout and flags `conntrack -L` printed, or the entry gone, and whether the
probe was counted INVALID (an iptables `--ctstate INVALID` rule counter).
"""
import pytest
from hypothesis import given
from hypothesis.strategies import integers, sampled_from

from ct_packets import C, Router, Tcp
from tunrouter.conntrack.conn import CtInfo
from tunrouter.conntrack.proto.tcp import SEG_INDEX, TCP_CONNTRACKS, Seg, TcpState, seg_index
from tunrouter.conntrack.tuple import Dir
from tunrouter.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

# CONNTRACK-REFERENCE.md §1.2, verbatim.
REFERENCE = """
| syn    | SYN_SENT | SYN_SENT | IG | IG | IG | IG | IG | SYN_SENT | SYN_SENT | SYN_SENT2 |
| synack | IV | IV | SYN_RECV | IV | IV | IV | IV | IV | IV | SYN_RECV |
| fin    | IV | IV | FIN_WAIT | FIN_WAIT | LAST_ACK | LAST_ACK | LAST_ACK | TIME_WAIT | CLOSE | IV |
| ack    | ESTAB | IV | ESTAB | ESTAB | CLOSE_WAIT | CLOSE_WAIT | TIME_WAIT | TIME_WAIT | CLOSE | IV |
| rst    | IV | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE |
| none   | IV | IV | IV | IV | IV | IV | IV | IV | IV | IV |

| syn    | IV | SYN_SENT2 | IV | IV | IV | IV | IV | SYN_SENT | IV | SYN_SENT2 |
| synack | IV | SYN_RECV | IG | IG | IG | IG | IG | IG | IG | SYN_RECV |
| fin    | IV | IV | FIN_WAIT | FIN_WAIT | LAST_ACK | LAST_ACK | LAST_ACK | TIME_WAIT | CLOSE | IV |
| ack    | IV | IG | SYN_RECV | ESTAB | CLOSE_WAIT | CLOSE_WAIT | TIME_WAIT | TIME_WAIT | CLOSE | IG |
| rst    | IV | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE |
| none   | IV | IV | IV | IV | IV | IV | IV | IV | IV | IV |
"""
_NAMES = {"IV": TcpState.INVALID, "IG": TcpState.IGNORE, "ESTAB": TcpState.ESTABLISHED}


def _reference_cells():
    rows = [line for line in REFERENCE.splitlines() if line.startswith("|")]
    for i, line in enumerate(rows):
        fields = [f.strip() for f in line.strip("|").split("|")]
        direction, seg = Dir(i // 6), Seg[fields[0].upper()]
        for state, cell in zip(TcpState, fields[1:]):
            yield direction, seg, state, _NAMES.get(cell) or TcpState[cell]


@pytest.mark.parametrize("direction,seg,state,want", list(_reference_cells()),
                         ids=lambda v: getattr(v, "name", None))
def test_table_matches_reference(direction, seg, state, want):
    assert TcpState(TCP_CONNTRACKS[direction][seg][state]) == want


def test_reference_covers_every_cell():
    assert len(list(_reference_cells())) == 2 * len(Seg) * (TcpState.SYN_SENT2 + 1)


@pytest.mark.parametrize("flags,want", [
    (SYN, Seg.SYN), (SYN | ACK, Seg.SYNACK), (SYN | URG | PSH, Seg.SYN), (FIN | ACK, Seg.FIN),
    (FIN, Seg.FIN), (ACK, Seg.ACK), (ACK | PSH, Seg.ACK), (RST, Seg.RST), (RST | ACK, Seg.RST),
    (RST | SYN | FIN, Seg.RST), (SYN | FIN, Seg.SYN), (0, Seg.NONE), (URG | PSH, Seg.NONE),
])
def test_seg_index(flags, want):
    assert seg_index(flags) == want == SEG_INDEX[flags]


@given(direction=sampled_from(Dir), flags=integers(0, 255),
       state=sampled_from([s for s in TcpState if s <= TcpState.SYN_SENT2]))
def test_table_is_total(direction, flags, state):
    assert TcpState(TCP_CONNTRACKS[direction][SEG_INDEX[flags]][state]) in TcpState


# What Linux 6.18 did: (probe INVALID or ok, then `conntrack -L`: state,
# timeout, flags, or "gone").  "reversed": a new entry whose ORIGINAL side is
# the server (a SYN from the server reopened TIME_WAIT).
KERNEL = {
    ('SYN_SENT', 'ORIGINAL', 'syn'): ('ok', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'ORIGINAL', 'synack'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'ORIGINAL', 'fin'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'ORIGINAL', 'ack'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'ORIGINAL', 'rst'): ('ok', 'gone'),
    ('SYN_SENT', 'ORIGINAL', 'none'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'REPLY', 'syn'): ('ok', 'SYN_SENT2 119'),
    ('SYN_SENT', 'REPLY', 'synack'): ('ok', 'SYN_RECV 59'),
    ('SYN_SENT', 'REPLY', 'fin'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT', 'REPLY', 'ack'): ('ok', 'SYN_SENT 119'),
    ('SYN_SENT', 'REPLY', 'rst'): ('ok', 'gone'),
    ('SYN_SENT', 'REPLY', 'none'): ('INVALID', 'SYN_SENT 119 UNREPLIED'),
    ('SYN_SENT2', 'ORIGINAL', 'syn'): ('ok', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'ORIGINAL', 'synack'): ('ok', 'SYN_RECV 59'),
    ('SYN_SENT2', 'ORIGINAL', 'fin'): ('INVALID', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'ORIGINAL', 'ack'): ('INVALID', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9'),
    ('SYN_SENT2', 'ORIGINAL', 'none'): ('INVALID', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'REPLY', 'syn'): ('ok', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'REPLY', 'synack'): ('ok', 'SYN_RECV 59'),
    ('SYN_SENT2', 'REPLY', 'fin'): ('INVALID', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'REPLY', 'ack'): ('ok', 'SYN_SENT2 119'),
    ('SYN_SENT2', 'REPLY', 'rst'): ('ok', 'CLOSE 9'),
    ('SYN_SENT2', 'REPLY', 'none'): ('INVALID', 'SYN_SENT2 119'),
    ('SYN_RECV', 'ORIGINAL', 'syn'): ('ok', 'SYN_RECV 59'),
    ('SYN_RECV', 'ORIGINAL', 'synack'): ('ok', 'SYN_RECV 59'),
    ('SYN_RECV', 'ORIGINAL', 'fin'): ('ok', 'FIN_WAIT 119'),
    ('SYN_RECV', 'ORIGINAL', 'ack'): ('ok', 'ESTABLISHED 431999 ASSURED'),
    ('SYN_RECV', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9'),
    ('SYN_RECV', 'ORIGINAL', 'none'): ('INVALID', 'SYN_RECV 59'),
    ('SYN_RECV', 'REPLY', 'syn'): ('INVALID', 'SYN_RECV 59'),
    ('SYN_RECV', 'REPLY', 'synack'): ('ok', 'SYN_RECV 59'),
    ('SYN_RECV', 'REPLY', 'fin'): ('ok', 'FIN_WAIT 119'),
    ('SYN_RECV', 'REPLY', 'ack'): ('ok', 'SYN_RECV 59'),
    ('SYN_RECV', 'REPLY', 'rst'): ('ok', 'CLOSE 9'),
    ('SYN_RECV', 'REPLY', 'none'): ('INVALID', 'SYN_RECV 59'),
    ('ESTABLISHED', 'ORIGINAL', 'syn'): ('ok', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'ORIGINAL', 'synack'): ('INVALID', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'ORIGINAL', 'fin'): ('ok', 'FIN_WAIT 119 ASSURED'),
    ('ESTABLISHED', 'ORIGINAL', 'ack'): ('ok', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('ESTABLISHED', 'ORIGINAL', 'none'): ('INVALID', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'syn'): ('INVALID', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'synack'): ('ok', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'fin'): ('ok', 'FIN_WAIT 119 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'ack'): ('ok', 'ESTABLISHED 431999 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('ESTABLISHED', 'REPLY', 'none'): ('INVALID', 'ESTABLISHED 431999 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'syn'): ('ok', 'FIN_WAIT 119 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'synack'): ('INVALID', 'FIN_WAIT 119 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'ack'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('FIN_WAIT', 'ORIGINAL', 'none'): ('INVALID', 'FIN_WAIT 119 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'syn'): ('INVALID', 'FIN_WAIT 119 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'synack'): ('ok', 'FIN_WAIT 119 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'ack'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('FIN_WAIT', 'REPLY', 'none'): ('INVALID', 'FIN_WAIT 119 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'syn'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'synack'): ('INVALID', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'ack'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE_WAIT', 'ORIGINAL', 'none'): ('INVALID', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'syn'): ('INVALID', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'synack'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'ack'): ('ok', 'CLOSE_WAIT 59 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE_WAIT', 'REPLY', 'none'): ('INVALID', 'CLOSE_WAIT 59 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'syn'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'synack'): ('INVALID', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'ack'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('LAST_ACK', 'ORIGINAL', 'none'): ('INVALID', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'REPLY', 'syn'): ('INVALID', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'REPLY', 'synack'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'REPLY', 'fin'): ('ok', 'LAST_ACK 29 ASSURED'),
    ('LAST_ACK', 'REPLY', 'ack'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('LAST_ACK', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('LAST_ACK', 'REPLY', 'none'): ('INVALID', 'LAST_ACK 29 ASSURED'),
    ('TIME_WAIT', 'ORIGINAL', 'syn'): ('ok', 'SYN_SENT 119 UNREPLIED'),
    ('TIME_WAIT', 'ORIGINAL', 'synack'): ('INVALID', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'ORIGINAL', 'fin'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'ORIGINAL', 'ack'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('TIME_WAIT', 'ORIGINAL', 'none'): ('INVALID', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'REPLY', 'syn'): ('ok', 'SYN_SENT 119 UNREPLIED reversed'),
    ('TIME_WAIT', 'REPLY', 'synack'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'REPLY', 'fin'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'REPLY', 'ack'): ('ok', 'TIME_WAIT 119 ASSURED'),
    ('TIME_WAIT', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('TIME_WAIT', 'REPLY', 'none'): ('INVALID', 'TIME_WAIT 119 ASSURED'),
    ('CLOSE', 'ORIGINAL', 'syn'): ('ok', 'SYN_SENT 119 UNREPLIED'),
    ('CLOSE', 'ORIGINAL', 'synack'): ('INVALID', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'ORIGINAL', 'fin'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'ORIGINAL', 'ack'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'ORIGINAL', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'ORIGINAL', 'none'): ('INVALID', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'syn'): ('INVALID', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'synack'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'fin'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'ack'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'rst'): ('ok', 'CLOSE 9 ASSURED'),
    ('CLOSE', 'REPLY', 'none'): ('INVALID', 'CLOSE 9 ASSURED'),
}

KINDS = {"syn": "S", "synack": "SA", "fin": "FA", "ack": "A", "rst": "R", "none": ""}


def _summary(r: Router) -> str:
    lines = r.listing()
    if not lines:
        return "gone"
    assert len(lines) == 1, lines
    fields = lines[0].split()
    text = f"{fields[3]} {fields[2]}"
    if "[UNREPLIED]" in fields:
        text += " UNREPLIED"
    if "[ASSURED]" in fields:
        text += " ASSURED"
    if fields[4] != f"src={C}":
        text += " reversed"
    return text


@pytest.mark.parametrize("state,direction,kind", list(KERNEL), ids="-".join)
def test_cell(state, direction, kind):
    """Reach state with real segments, send one segment of kind, compare with the kernel."""
    r = Router()
    tcp = Tcp(r)
    tcp.to_state(state)
    send = tcp.client if direction == "ORIGINAL" else tcp.server
    invalid_before = r.table.stats.invalid
    _ct, ctinfo = send(KINDS[kind])
    verdict = "INVALID" if r.table.stats.invalid > invalid_before else "ok"
    assert (verdict, _summary(r)) == KERNEL[state, direction, kind]
    assert (ctinfo == CtInfo.INVALID) == (verdict == "INVALID")


@pytest.mark.parametrize("kind,want", [
    ("syn", ("ok", "SYN_SENT 119 UNREPLIED")),
    ("synack", ("INVALID", "gone")),
    ("fin", ("INVALID", "gone")),
    ("ack", ("ok", "ESTABLISHED 299 UNREPLIED")),    # picked up mid-stream (tcp_loose=1)
    ("rst", ("INVALID", "gone")),
    ("none", ("INVALID", "gone")),
])
def test_none_first_packet(kind, want):
    """The NONE column: only a SYN, or with tcp_loose an ACK, starts a connection (kernel 6.18)."""
    r = Router()
    _ct, ctinfo = Tcp(r).client(KINDS[kind])
    assert ("INVALID" if ctinfo == CtInfo.INVALID else "ok", _summary(r)) == want
