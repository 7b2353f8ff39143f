"""NFLOG groups as pcap files: <dir>/nflog-<group>.pcap, one per group.

Records use LINKTYPE_NFLOG (239), the link type of `tcpdump -i nflog:N`, so
the file keeps what the kernel's nfnetlink_log message carries and tcpdump
and Wireshark show it: the group (nflog_rid), the hook, the rule's
--nflog-prefix and the packet from its IPv4 header, cut to --nflog-size.
Layout (tcpdump print-nflog.c, Linux nfnetlink_log.h): a 4-byte header
{family, version 0, group (big-endian)}, then TLVs {length, type} in host
byte order, length including the 4-byte TLV header, each padded to 4 bytes.

--nflog-threshold is honoured as the kernel does: a group's records are
written once that many have gathered (and whatever is left when the router
stops).  A sink that cannot write (full disk, removed directory) counts the
records as lost, cuts the file back to its last whole record and logs once;
the router goes on.
"""
import contextlib
import logging
import os
import struct
import time
from pathlib import Path

LINKTYPE_NFLOG = 239
SNAPLEN = 65535 + 512
AF_INET = 2
NFULA_PACKET_HDR = 1
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10
ETH_P_IP = 0x0800

_GLOBAL = struct.Struct("=IHHiIII")      # pcap file header, the writer's byte order
_RECORD = struct.Struct("=IIII")         # ts_sec, ts_usec, incl_len, orig_len
_TLV = struct.Struct("=HH")              # nflog TLVs are in host byte order

log = logging.getLogger("tunrouter.nflog")


def _tlv(kind: int, value: bytes) -> bytes:
    return _TLV.pack(_TLV.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def nflog_frame(record) -> bytes:
    """One record's LINKTYPE_NFLOG frame."""
    out = struct.pack("!BBH", AF_INET, 0, record.group)
    out += _tlv(NFULA_PACKET_HDR, struct.pack("!HBB", ETH_P_IP, int(record.hook), 0))
    if record.prefix:
        out += _tlv(NFULA_PREFIX, record.prefix.encode() + b"\0")
    return out + _tlv(NFULA_PAYLOAD, record.data)


class NflogSink:
    """Appends each group's records to its pcap file; wall-clock stamps from the monotonic now."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._files: dict[int, object] = {}
        self._pending: dict[int, list] = {}
        self._whole: dict[int, int] = {}           # group -> file size ending in a whole record
        self.written = 0
        self.lost = 0
        self._failed = False

    def write(self, records: list) -> None:
        for r in records:
            batch = self._pending.setdefault(r.group, [])
            batch.append(r)
            if len(batch) >= r.threshold:
                self._flush(r.group)

    def close(self) -> None:
        for group in list(self._pending):
            self._flush(group)
        for f in self._files.values():
            f.close()
        self._files.clear()

    def _flush(self, group: int) -> None:
        batch = self._pending.pop(group, [])
        if not batch:
            return
        offset = time.time() - time.monotonic()      # monotonic `now` -> wall clock
        try:
            f = self._file(group)
            for r in batch:
                frame = nflog_frame(r)
                stamp = r.now + offset
                f.write(_RECORD.pack(int(stamp), int(stamp % 1 * 1e6), len(frame), len(frame)))
                f.write(frame)
            f.flush()
            self._whole[group] = f.tell()
            self.written += len(batch)
        except OSError as e:
            self.lost += len(batch)
            self._drop_partial(group)
            if not self._failed:
                self._failed = True
                log.error("NFLOG group %d: cannot write to %s: %s (records are counted as lost)",
                          group, self.directory, e)

    def _drop_partial(self, group: int) -> None:
        """After a failed write: close the file and cut it back to its last whole record, so
        what is written once there is room again follows a readable pcap (a record cut in
        the middle would make every later one unreadable)."""
        f = self._files.pop(group, None)
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()                 # its buffer cannot be flushed: the fd closes anyway
        whole = self._whole.pop(group, None)
        if whole is not None:
            with contextlib.suppress(OSError):
                os.truncate(self.directory / f"nflog-{group}.pcap", whole)

    def _file(self, group: int):
        f = self._files.get(group)
        if f is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.directory / f"nflog-{group}.pcap"
            f = open(path, "ab")
            self._whole[group] = f.tell()
            if f.tell() == 0:
                f.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_NFLOG))
            self._files[group] = f
        return f

