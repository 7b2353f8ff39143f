"""A bare TUN-to-TUN forwarder: the Python I/O ceiling, with no packet processing.

Two L3 TUN devices, one in each namespace; every packet read on one is
written unchanged to the other.  The loop is the router's (epoll, batches of
non-blocking reads into one reused buffer) minus parsing, so the gap between
this and tunrouter is what tunrouter's processing costs.

With --offload both devices are opened with IFF_VNET_HDR and TUNSETOFFLOAD
(checksums and TSO left undone by the hosts' stacks), and each frame, its
virtio-net header included, is passed on as it is: the ceiling with offloads.

With --busy-poll US the loop polls without sleeping for that many
microseconds after the last frame, as tunrouter's busy_poll_us does: the
latency floor with busy polling.

    bare_forwarder.py [--offload] [--busy-poll US] --side NETNS HOST_ADDRESS/LEN GATEWAY --side NETNS HOST_ADDRESS/LEN GATEWAY

Prints "ready" once both devices are up; exits on SIGTERM or SIGINT, and the
devices vanish with their file descriptors.
"""
import argparse
import errno
import fcntl
import os
import select
import signal
import sys
import time

import pytun
from pyroute2 import IPRoute, netns

BATCH = 64                      # reads per device per wakeup, as in tunrouter's loop
BUFSIZE = 65536 + 10            # the largest IPv4 datagram and a virtio-net header
TUNSETOFFLOAD = 0x400454D0
OFFLOADS = 0x01 | 0x02 | 0x04 | 0x08          # TUN_F_CSUM, TSO4, TSO6, TSO_ECN
DEVICE = "eth0"
# A write that fails with these drops the packet, as a router's output would: EIO, the
# device is down; EINVAL, not an IP packet; EAGAIN/ENOBUFS, the kernel has no room.
DROPPED = (errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.EINVAL)


def open_tun(ns: str, host_address: str, gateway: str, mtu: int, offload: bool) -> pytun.TunTapDevice:
    """Create the device from inside ns (so it is born there) and configure it there."""
    netns.pushns(ns)
    try:
        flags = pytun.IFF_TUN | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if offload else 0)
        dev = pytun.TunTapDevice(name=DEVICE, flags=flags)
        if offload:
            fcntl.ioctl(dev.fileno(), TUNSETOFFLOAD, OFFLOADS)
        addr, plen = host_address.split("/")
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=DEVICE)[0]
            ipr.link("set", index=idx, mtu=mtu)
            ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
            ipr.link("set", index=idx, state="up")
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=idx)
    finally:
        netns.popns()
    os.set_blocking(dev.fileno(), False)
    return dev


def forward(fd_a: int, fd_b: int, busy_poll: float) -> None:
    """Copy packets both ways until a signal ends the process; busy_poll in seconds."""
    peer = {fd_a: fd_b, fd_b: fd_a}
    ep = select.epoll()
    for fd in peer:
        ep.register(fd, select.EPOLLIN)
    buf = bytearray(BUFSIZE)
    view = memoryview(buf)
    bufs = [buf]
    readv, write, clock = os.readv, os.write, time.monotonic
    last_frame = clock()
    while True:
        events = ep.poll(0.0 if clock() - last_frame < busy_poll else -1)
        if events:
            last_frame = clock()
        for fd, _ev in events:
            out = peer[fd]
            for _ in range(BATCH):
                try:
                    n = readv(fd, bufs)
                except BlockingIOError:
                    break
                try:
                    write(out, view[:n])
                except OSError as e:
                    if e.errno not in DROPPED:
                        raise


def _stop(_signum, _frame):
    sys.exit(0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", nargs=3, action="append", required=True,
                   metavar=("NETNS", "HOST_ADDRESS", "GATEWAY"),
                   help="a namespace, the address its device gets, its default gateway (give twice)")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--offload", action="store_true", help="IFF_VNET_HDR + TUNSETOFFLOAD (TSO)")
    p.add_argument("--busy-poll", type=int, default=0, metavar="US",
                   help="poll without sleeping for US microseconds after the last frame")
    args = p.parse_args()
    if len(args.side) != 2:
        p.error("give --side exactly twice")
    # Raising from the handler unwinds through epoll.poll() and closes the devices.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    a = open_tun(*args.side[0], args.mtu, args.offload)
    b = open_tun(*args.side[1], args.mtu, args.offload)
    print("ready", flush=True)
    try:
        forward(a.fileno(), b.fileno(), args.busy_poll / 1e6)
    finally:
        a.close()
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
