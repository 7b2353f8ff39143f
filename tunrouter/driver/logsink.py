"""Where LOG lines go: a file, stderr, or the local syslog socket; kernel text or JSON.

The kernel format is the LOG target's line as the kernel prints it: the
rule's --log-prefix, then `IN= OUT= ... ` (nf_log_syslog.c), one per line.
To syslog it goes as facility kern with the rule's --log-level as the
severity (`<PRI>` = 0 * 8 + level), tagged `tunrouter-ROUTER`.  A sink that
fails (full disk, unwritable file, no syslog daemon) never stops the router:
the lines are counted as lost (a line cut short by it is cut off the file) and
the first failure is logged once.
"""
import logging
import os
import socket
import sys

log = logging.getLogger("tunrouter.log")

SYSLOG_SOCKET = "/dev/log"


class LogSink:
    def __init__(self, target: str, fmt: str, router: str):
        self.target, self.fmt, self.tag = target, fmt, f"tunrouter-{router}"
        self.written = 0
        self.lost = 0
        self._failed_logged = False
        self._fh = None
        self._sock = None

    def _open(self):
        if self.target == "stderr":
            return sys.stderr
        if self._fh is None:
            os.makedirs(os.path.dirname(self.target) or ".", exist_ok=True)
            self._fh = open(self.target, "a", encoding="utf-8")
        return self._fh

    def _syslog(self, level: int, text: str) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.connect(SYSLOG_SOCKET)
        self._sock.send(f"<{level & 7}>{self.tag}: {text}".encode())

    def write(self, records: list) -> None:
        """Write every LogRecord; on failure count them as lost and log the first failure."""
        json_fmt = self.fmt == "json"
        done = 0
        start = None                      # the file's size before this batch
        try:
            if self.target == "syslog":
                for r in records:
                    self._syslog(r.level, r.json() if json_fmt else r.text())
                    done += 1
            else:
                fh = self._open()
                if fh is not sys.stderr:
                    start = fh.tell()
                fh.write("".join((r.json() if json_fmt else r.text()) + "\n" for r in records))
                fh.flush()
                done = len(records)
        except (OSError, ValueError) as e:
            self.lost += len(records) - done
            self._reset()
            if start is not None:         # no half line for the next write to follow
                try:
                    os.truncate(self.target, start)
                except OSError:
                    pass
            if not self._failed_logged:
                self._failed_logged = True
                log.error("LOG sink %s: %s; LOG lines are being lost (counted as log_lost; "
                          "logged once)", self.target, e)
        self.written += done

    def _reset(self) -> None:
        for obj in (self._fh, self._sock):
            try:
                if obj is not None:
                    obj.close()
            except OSError:
                pass
        self._fh = self._sock = None

    def close(self) -> None:
        self._reset()
