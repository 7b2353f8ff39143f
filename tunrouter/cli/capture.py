"""`tunrouter capture PORT [-w FILE.pcap] [FILTER]`: the frames crossing a port.

"in" frames are as the port delivered them, before the router processed
them; "out" frames as the router wrote them, after processing.  With -w the
frames go to a pcap file (raw IPv4 on TUN ports, Ethernet on TAP ports) that
tcpdump -r and tshark read, written as they come; without it one line per
frame.  FILTER as for `tunrouter trace`.
"""
import argparse
import struct
import sys
import time

from tunrouter.driver.control import subscribe

PCAP_HEADER = struct.Struct("<IHHiIII")        # magic, v2.4, zone, sigfigs, snaplen, linktype
PCAP_RECORD = struct.Struct("<IIII")           # seconds, microseconds, captured, original length
# tcpdump's own maximum: a 64 KiB super-segment behind an Ethernet header is longer than 65535
SNAPLEN = 262144


def add_parsers(sub, add_target, resolve) -> None:
    p = sub.add_parser("capture", help="frames crossing a port, before (in) and after (out) "
                                       "processing, as text or pcap",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target(p)
    p.add_argument("port", help="the router's port name, e.g. lan0")
    p.add_argument("-w", "--write", metavar="FILE", help="write a pcap file ('-' for stdout)")
    p.add_argument("-d", "--direction", choices=["in", "out", "both"], default="both",
                   help="in: as read from the port, before processing; out: as written to "
                        "it, after; default both")
    p.add_argument("-c", "--count", type=int, default=0, help="stop after N frames")
    p.add_argument("filter", nargs="*", help="tcpdump-style or iptables-style filter")
    p.set_defaults(func=lambda a: run_capture(a, resolve(a)))


class PcapWriter:
    def __init__(self, out):
        self.out = out
        self.linktype = None

    def write(self, t: float, frame: bytes, linktype: int) -> None:
        if self.linktype is None:
            self.linktype = linktype
            self.out.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        sec = int(t)
        self.out.write(PCAP_RECORD.pack(sec, int((t - sec) * 1e6), len(frame), len(frame)))
        self.out.write(frame)
        self.out.flush()


def _line(item: dict) -> str:
    from scapy.layers.inet import IP  # Scapy only in the CLI, never in the router
    from scapy.layers.l2 import Ether
    frame = bytes.fromhex(item["frame"])
    pkt = Ether(frame) if item["linktype"] == 1 else IP(frame)
    stamp = time.strftime("%H:%M:%S", time.localtime(item["t"])) + f".{int(item['t'] % 1 * 1e6):06d}"
    return f"{stamp} {item['dir']:<3} {pkt.summary()}"


def run_capture(args, sock: str) -> int:
    writer = None
    if args.write:
        out = sys.stdout.buffer if args.write == "-" else open(args.write, "wb")  # noqa: SIM115
        writer = PcapWriter(out)
    shown = 0
    try:
        for item in subscribe(sock, "capture", port=args.port, direction=args.direction,
                              filter=" ".join(args.filter)):
            if writer is not None:
                writer.write(item["t"], bytes.fromhex(item["frame"]), item["linktype"])
            else:
                print(_line(item), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                break
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        if writer is not None and writer.out is not sys.stdout.buffer:
            writer.out.close()
    print(f"{shown} frames captured on {args.port} ({args.direction}).", file=sys.stderr)
    return 0
