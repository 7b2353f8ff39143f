"""Conntrack helpers in real labs: real FTP and TFTP servers and clients through MASQUERADE.

The home lab runs a ruleset here: home.rules' NAT, `CT --helper ftp` / `tftp`
in raw PREROUTING, and a FORWARD chain (policy DROP) that lets through only
ESTABLISHED,RELATED and NEW control connections (tcp 21, udp 69) from the
LANs.  So a data connection (active FTP's, inbound from the server) or a TFTP
answer (from a new server port) only passes when the helper expected it, and
under MASQUERADE the announced address only works when it was rewritten.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import LABS, lab_from, need, tunrouter

pytestmark = pytest.mark.netns

RAW = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
"""
REST = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan+ -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i lan+ -p udp -m udp --dport 69 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""
WEB = "203.0.113.80"
ROUTER_WAN = "203.0.113.1"


def _lab(tmp_path, rules: str):
    (tmp_path / "helpers.rules").write_text(rules)

    def edit(text):
        assert 'rules = "home.rules"' in text
        return text.replace('rules = "home.rules"', 'rules = "helpers.rules"', 1)
    return lab_from(LABS / "home.toml", tmp_path, edit=edit)


@pytest.fixture
def helpers_lab(tmp_path):
    with _lab(tmp_path, RAW + REST) as lab:
        yield lab


@pytest.fixture
def nohelper_lab(tmp_path):
    with _lab(tmp_path, REST) as lab:
        yield lab


def conntrack_lines(lab, *args) -> list[str]:
    out = tunrouter("conntrack", "--lab", lab.name, "-L", *args).stdout
    return [line for line in out.splitlines() if line.strip()]


def blob(tmp_path, size=1 << 20):
    """A directory the servers may read (world-readable) holding a random file; its md5."""
    d = tmp_path / "pub"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    data = os.urandom(size)
    (d / "file").write_bytes(data)
    os.chmod(d / "file", 0o644)
    return d, hashlib.md5(data).hexdigest()


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.kill()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return out or ""


class Vsftpd:
    """vsftpd in the lab's web namespace, anonymous read-only, active and passive."""

    def __init__(self, lab, tmp_path, root, promiscuous=False, host="web", address=WEB, extra=()):
        self.lab = lab
        empty = tmp_path / "vsftpd-empty"
        empty.mkdir(mode=0o755)
        os.chmod(empty, 0o755)
        self.log = tmp_path / "vsftpd.log"
        conf = tmp_path / "vsftpd.conf"
        conf.write_text("\n".join([
            "listen=YES", "listen_ipv6=NO", f"listen_address={address}", "listen_port=21",
            "background=NO", "anonymous_enable=YES", "local_enable=NO", "write_enable=NO",
            f"anon_root={root}", "no_anon_password=YES", "ftp_username=ftp",
            "nopriv_user=nobody", "pasv_enable=YES", "port_enable=YES",
            # (vsftpd 3.0.3 cannot bind port 20 with port_promiscuous: "OOPS: vsf_sysutil_bind")
            f"connect_from_port_20={'NO' if promiscuous else 'YES'}", "ftp_data_port=20", "seccomp_sandbox=NO",
            "isolate=NO", "isolate_network=NO", f"secure_chroot_dir={empty}",
            "connect_timeout=5", "accept_timeout=10", "data_connection_timeout=20",
            "idle_session_timeout=30", "xferlog_enable=YES", f"vsftpd_log_file={self.log}",
            "dual_log_enable=NO", "log_ftp_protocol=YES", "use_localtime=NO",
            "pasv_min_port=30000", "pasv_max_port=30100",
            f"port_promiscuous={'YES' if promiscuous else 'NO'}", *extra, ""]))
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(host), "vsftpd", str(conf)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 10
        while not lab.run(host, "ss", "-Hltn", "sport = :21").stdout.strip():
            assert self.proc.poll() is None, f"vsftpd exited: {_stop(self.proc)}"
            assert time.monotonic() < deadline, "vsftpd does not listen"
            time.sleep(0.1)

    def stop(self) -> str:
        out = _stop(self.proc)
        return out + (self.log.read_text(errors="replace") if self.log.exists() else "")


@pytest.fixture
def vsftpd(helpers_lab, tmp_path):
    root, md5 = blob(tmp_path)
    server = Vsftpd(helpers_lab, tmp_path, root)
    try:
        yield server, md5
    finally:
        server.stop()


def curl(lab, host, out, *opts, max_time=20):
    return subprocess.run(["ip", "netns", "exec", lab.ns(host), "curl", "-sS", "--max-time", str(max_time),
                           "--connect-timeout", "5", "-o", str(out), *opts, f"ftp://{WEB}/file"],
                          check=False, capture_output=True, text=True, timeout=max_time + 10)


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else None


# -- 1. FTP, active and passive, through MASQUERADE ---------------------------

@pytest.mark.parametrize("mode,opts", [
    ("active-eprt", ["--ftp-port", "-"]),
    ("active-port", ["--ftp-port", "-", "--disable-eprt"]),
    ("passive-epsv", []),
    ("passive-pasv", ["--disable-epsv"]),
])
def test_ftp_download_through_masquerade(helpers_lab, vsftpd, tmp_path, mode, opts):
    need("curl")
    server, want = vsftpd
    out = tmp_path / f"{mode}.bin"
    p = curl(helpers_lab, "h1", out, *opts)
    assert p.returncode == 0 and md5_of(out) == want, (mode, p.returncode, p.stderr, server.stop())
    lines = conntrack_lines(helpers_lab, "-p", "tcp")
    control = [line for line in lines if "dport=21 " in line and "src=10.1.0.2 " in line]
    assert control and all("helper=ftp" in line for line in control), "\n".join(lines)
    # the data connection was tracked: inbound from web's port 20 (active) or to its
    # passive range (passive), h1's side masqueraded behind wan0
    if mode.startswith("active"):
        data = [line for line in lines if f"src={WEB} dst={ROUTER_WAN} sport=20 " in line
                and f"src=10.1.0.2 dst={WEB} " in line]
        assert data, "\n".join(lines)
        # the server read the announcement rewritten to the router's outside address
        log = server.stop()
        assert ('"EPRT |1|203.0.113.1|' if mode == "active-eprt" else '"PORT 203,0,113,1,') in log, log
    else:
        data = [line for line in lines if re.search(rf"src=10\.1\.0\.2 dst={WEB} sport=\d+ dport=30\d\d\d ",
                                                    line)]
        assert data, "\n".join(lines)


def test_lftp_active_download(helpers_lab, vsftpd, tmp_path):
    need("lftp")
    server, want = vsftpd
    out = tmp_path / "lftp.bin"
    script = ("set ftp:passive-mode off; set net:timeout 5; set net:max-retries 1; "
              "set net:reconnect-interval-base 1; set xfer:clobber on; "
              f"open ftp://anonymous:x@{WEB}; get file -o {out}; bye")
    p = helpers_lab.run("h1", "lftp", "-c", script, timeout=40, check=False)
    assert p.returncode == 0 and md5_of(out) == want, (p.returncode, p.stdout, p.stderr, server.stop())
    log = server.stop()
    assert re.search(r'"(EPRT \|1\|203\.0\.113\.1\||PORT 203,0,113,1,)', log), log
    lines = conntrack_lines(helpers_lab, "-p", "tcp")
    assert any(f"src={WEB} dst={ROUTER_WAN} sport=20 " in line for line in lines), "\n".join(lines)


def test_active_ftp_without_the_helper_rule_fails(nohelper_lab, tmp_path):
    need("curl")
    root, want = blob(tmp_path)
    # port_promiscuous: vsftpd accepts the unrewritten PORT 10,1,0,2,... and tries to
    # connect there, so what fails is the network (FORWARD drops the NEW inbound SYN),
    # not vsftpd's own check that PORT names the client's address; connect_timeout=5
    # bounds the wait
    server = Vsftpd(nohelper_lab, tmp_path, root, promiscuous=True)
    try:
        out = tmp_path / "active.bin"
        start = time.monotonic()
        p = curl(nohelper_lab, "h1", out, "--ftp-port", "-", "--disable-eprt", max_time=15)
        took = time.monotonic() - start
        log = server.stop()
        assert p.returncode != 0 and md5_of(out) != want, (p.returncode, p.stderr)
        assert took < 20
        assert '"PORT 10,1,0,2,' in log and "200 PORT command successful" in log, log
        assert "425 Failed to establish connection" in log, log
        # no helper was attached to anything
        lines = conntrack_lines(nohelper_lab, "-p", "tcp")
        assert not any("helper=" in line for line in lines), "\n".join(lines)
    finally:
        server.stop()


# -- 2. TFTP through MASQUERADE ----------------------------------------------

def test_tftp_get_through_masquerade(helpers_lab, tmp_path):
    need("in.tftpd", "tftp")
    root, want = blob(tmp_path)
    server = subprocess.Popen(["ip", "netns", "exec", helpers_lab.ns("web"), "in.tftpd", "-L", "-u", "nobody",
                               "-a", f"{WEB}:69", "-s", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while not helpers_lab.run("web", "ss", "-Hlun", "sport = :69").stdout.strip():
            assert server.poll() is None, _stop(server)
            assert time.monotonic() < deadline, "in.tftpd does not listen"
            time.sleep(0.1)
        out = tmp_path / "tftp.bin"
        p = helpers_lab.run("h2", "tftp", WEB, "-c", "get", "file", str(out), timeout=40, check=False)
        assert p.returncode == 0 and md5_of(out) == want, (p.returncode, p.stdout, p.stderr,
                                                          out.stat().st_size if out.exists() else None)
    finally:
        _stop(server)
    lines = conntrack_lines(helpers_lab, "-p", "udp")
    control = [line for line in lines if "dport=69 " in line and "src=10.2.0.2 " in line]
    assert control and "helper=tftp" in control[0] and f"dst={ROUTER_WAN}" in control[0], "\n".join(lines)
    # the transfer: from a new server port back to the masqueraded client, translated to h2
    data = [line for line in lines if line is not control[0] and "src=10.2.0.2" in line]
    assert data, "\n".join(lines)


# -- 3. IRC DCC (only once the irc helper is registered) ----------------------

def _irc_registered() -> bool:
    from tunrouter.helpers.registry import BUILTIN
    return "irc" in BUILTIN


IRC_RULES = RAW.replace("COMMIT", "-A PREROUTING -p tcp -m tcp --dport 6667 -j CT --helper irc\nCOMMIT", 1) + \
    REST.replace(
        "-A FORWARD -i lan+ -p udp",
        "-A FORWARD -i lan+ -p tcp -m tcp --dport 6667 -m conntrack --ctstate NEW -j ACCEPT\n"
        "-A FORWARD -i lan+ -p udp", 1)

IRC_COMMON = r"""
import hashlib, json, os, socket, sys, time
def register(nick):
    c = socket.create_connection((sys.argv[1], 6667), timeout=10)
    c.sendall(b"NICK %s\r\nUSER %s 0 * :%s\r\n" % (nick, nick, nick))
    f = c.makefile("rb")
    while True:
        line = f.readline()
        assert line, "server closed"
        if line.startswith(b"PING"):
            c.sendall(b"PONG" + line[4:])
        if line.split()[1:2] == [b"001"]:
            return c, f
"""

IRC_SENDER = IRC_COMMON + r"""
data = os.urandom(int(sys.argv[2]))
c, f = register(b"alice")
l = socket.socket(); l.bind(("10.1.0.2", 0)); l.listen(1); l.settimeout(20)
port = l.getsockname()[1]
addr = int.from_bytes(socket.inet_aton("10.1.0.2"), "big")
c.sendall(b"PRIVMSG bob :\1DCC SEND f %d %d %d\1\r\n" % (addr, port, len(data)))
a, _ = l.accept(); a.settimeout(20)
a.sendall(data); a.shutdown(socket.SHUT_WR)
while a.recv(4096):          # the receiver's acknowledgements, until it closes
    pass
c.sendall(b"QUIT :done\r\n")
print(json.dumps({"port": port, "md5": hashlib.md5(data).hexdigest()}), flush=True)
"""

IRC_RECEIVER = IRC_COMMON + r"""
c, f = register(b"bob")
print("ready", flush=True)
while True:
    line = f.readline()
    assert line, "server closed"
    if line.startswith(b"PING"):
        c.sendall(b"PONG" + line[4:])
    if b"PRIVMSG bob :\1DCC SEND " in line:
        break
msg = line.split(b"\1")[1].decode()
_, _, name, addr, port, size = msg.split()
host = socket.inet_ntoa(int(addr).to_bytes(4, "big"))
d = socket.create_connection((host, int(port)), timeout=10)
got = b""
while len(got) < int(size):
    chunk = d.recv(65536)
    if not chunk:
        break
    got += chunk
d.close()
print(json.dumps({"line": msg, "host": host, "port": int(port), "size": len(got),
                  "md5": hashlib.md5(got).hexdigest()}), flush=True)
"""


def test_irc_dcc_send_through_masquerade(tmp_path):
    if not _irc_registered():
        pytest.skip("the irc helper is not registered yet")
    need("ngircd")
    conf = tmp_path / "ngircd.conf"
    conf.write_text(f"""[Global]
Name = irc.lab.example
Info = lab
Listen = {WEB}
Ports = 6667
PidFile = {tmp_path}/ngircd.pid
MotdPhrase = lab
[Limits]
MaxConnectionsIP = 0
[Options]
PAM = no
DNS = no
Ident = no
""")
    with _lab(tmp_path, IRC_RULES) as lab:
        server = subprocess.Popen(["ip", "netns", "exec", lab.ns("web"), "ngircd", "-n", "-f", str(conf)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        receiver = None
        try:
            deadline = time.monotonic() + 10
            while not lab.run("web", "ss", "-Hltn", "sport = :6667").stdout.strip():
                assert server.poll() is None, _stop(server)
                assert time.monotonic() < deadline, "ngircd does not listen"
                time.sleep(0.1)
            receiver = subprocess.Popen(["ip", "netns", "exec", lab.ns("web"), sys.executable, "-c",
                                         IRC_RECEIVER, WEB], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
            assert receiver.stdout.readline().strip() == "ready", _stop(receiver)
            sender = lab.run("h1", sys.executable, "-c", IRC_SENDER, WEB, str(256 * 1024),
                             timeout=40, check=False)
            got_out, got_err = receiver.communicate(timeout=30)
            assert sender.returncode == 0 and receiver.returncode == 0, \
                (sender.stdout, sender.stderr, got_out, got_err)
            sent, got = json.loads(sender.stdout), json.loads(got_out)
            # the announced address became the router's, and the data arrived whole
            assert got["host"] == ROUTER_WAN, got
            assert got["md5"] == sent["md5"] and got["size"] == 256 * 1024, (sent, got)
            lines = conntrack_lines(lab, "-p", "tcp")
            control = [line for line in lines if "dport=6667 " in line and "src=10.1.0.2 " in line]
            assert control and "helper=irc" in control[0], "\n".join(lines)
            data = [line for line in lines
                    if f"dst={ROUTER_WAN} sport=" in line and f"dport={got['port']} " in line
                    and f"src=10.1.0.2 dst={WEB} sport={sent['port']} " in line]
            assert data, "\n".join(lines)
        finally:
            if receiver is not None:
                _stop(receiver)
            _stop(server)


# -- 4. abuse: PORT that must open nothing ------------------------------------

FAKE_SERVER = r"""
import json, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 21)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20)
c.sendall(b"220 fake\r\n")
buf = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        line = line.rstrip(b"\r")
        rec = {"line": line.decode("latin-1")}
        if line.upper().startswith(b"PORT "):
            n = [int(x) for x in line[5:].split(b",")]
            port = n[4] << 8 | n[5]
            for name, addr in (("router", sys.argv[2]), ("announced", "%d.%d.%d.%d" % tuple(n[:4]))):
                t = socket.socket(); t.settimeout(2)
                try:
                    t.connect((addr, port)); t.sendall(b"data"); rec[name] = "connected"
                except OSError as e:
                    rec[name] = "failed: %s" % e
                finally:
                    t.close()
        print(json.dumps(rec), flush=True)
        c.sendall(b"221 bye\r\n" if line.upper() == b"QUIT" else b"200 ok\r\n")
        if line.upper() == b"QUIT":
            sys.exit(0)
"""

FAKE_CLIENT = r"""
import json, socket, sys
server = sys.argv[1]
c = socket.create_connection((server, 21), timeout=10)
f = c.makefile("rb")
def reply():
    return f.readline().decode("latin-1").strip()
assert reply().startswith("220")
def listener():
    l = socket.socket(); l.bind(("10.1.0.2", 0)); l.listen(1); l.settimeout(1)
    return l, l.getsockname()[1]
def accepted(l):
    try:
        a, _ = l.accept(); a.close(); return True
    except OSError:
        return False
    finally:
        l.close()
def nums(addr, port):
    return addr.replace(".", ",") + ",%d,%d" % (port >> 8, port & 255)
out = {}
for cmd in (b"USER anonymous\r\n", b"PASS x\r\n"):
    c.sendall(cmd); reply()
# the control: a genuine PORT opens the way
l, p = listener()
c.sendall(b"PORT " + nums("10.1.0.2", p).encode() + b"\r\n"); out["genuine_reply"] = reply()
out["genuine"] = accepted(l)
# a third party's address
l, p = listener()
c.sendall(b"PORT " + nums("192.0.2.99", p).encode() + b"\r\n"); out["third_reply"] = reply()
out["third"] = accepted(l); out["third_port"] = p
# a PORT hidden mid-segment, after another command
l, p = listener()
c.sendall(b"NOOP\r\nPORT " + nums("10.1.0.2", p).encode() + b"\r\n"); reply(); out["hidden_reply"] = reply()
out["hidden"] = accepted(l); out["hidden_port"] = p
c.sendall(b"QUIT\r\n"); reply()
print(json.dumps(out), flush=True)
"""


def test_port_abuse_opens_nothing(helpers_lab, tmp_path):
    lab = helpers_lab
    server = subprocess.Popen(["ip", "netns", "exec", lab.ns("web"), sys.executable, "-c", FAKE_SERVER,
                               WEB, ROUTER_WAN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lab.wait_listen("web", 21)
        p = lab.run("h1", sys.executable, "-c", FAKE_CLIENT, WEB, timeout=60, check=False)
        server_out = server.communicate(timeout=20)[0]
    finally:
        server_out_rest = _stop(server)
    assert p.returncode == 0, (p.stdout, p.stderr, server_out_rest)
    client = json.loads(p.stdout.strip().splitlines()[-1])
    seen = [json.loads(line) for line in server_out.splitlines() if line.startswith("{")]
    ports = [r for r in seen if r["line"].upper().startswith("PORT ")]
    assert len(ports) == 3, seen
    genuine, third, hidden = ports
    # the genuine PORT arrived rewritten to the router's address and opened the way in
    assert genuine["line"].startswith("PORT 203,0,113,1,"), genuine
    assert genuine["router"] == "connected" and client["genuine"], (genuine, client)
    # a third party's address: not rewritten, not expected, nothing gets to h1
    assert third["line"].startswith("PORT 192,0,2,99,"), third
    assert third["router"].startswith("failed") and not client["third"], (third, client)
    # mid-segment: not read, so not rewritten and not expected
    assert hidden["line"].startswith("PORT 10,1,0,2,"), hidden
    assert hidden["router"].startswith("failed") and hidden["announced"].startswith("failed"), hidden
    assert not client["hidden"], client
    control = [line for line in conntrack_lines(lab, "-p", "tcp") if "dport=21 " in line]
    assert control and "helper=ftp" in control[0], control


# -- 5. an FTP server behind DNAT ---------------------------------------------
#
# vsftpd on h1 (10.1.0.2), published as 203.0.113.1:21; the client is curl in
# web.  vsftpd announces its own address (no pasv_address): the router must
# rewrite 227's 10,1,0,2 to 203,0,113,1, and active mode's data connection from
# 10.1.0.2:20 must leave as 203.0.113.1.

H1 = "10.1.0.2"
DNAT_RAW = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
COMMIT
"""
DNAT_REST = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 21 -j DNAT --to-destination 10.1.0.2:21
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d 10.1.0.2/32 -i wan0 -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW,DNAT -j ACCEPT
COMMIT
"""
# vsftpd announces what it listens on; pasv_address stays unset on purpose
DNAT_VSFTPD = ("pasv_addr_resolve=NO", "pasv_promiscuous=NO")


def curl_public(lab, out, *opts, max_time=20):
    """curl in web against the published server."""
    return subprocess.run(["ip", "netns", "exec", lab.ns("web"), "curl", "-sS", "-v", "--max-time", str(max_time),
                           "--connect-timeout", "5", "-o", str(out), *opts, f"ftp://{ROUTER_WAN}/file"],
                          check=False, capture_output=True, text=True, timeout=max_time + 10)


@pytest.mark.parametrize("mode,opts", [
    # --no-ftp-skip-pasv-ip: curl >= 7.74 ignores 227's address by default; make it use it
    ("passive-pasv", ["--disable-epsv", "--no-ftp-skip-pasv-ip"]),
    ("passive-epsv", []),
    ("active-port", ["--ftp-port", "-", "--disable-eprt"]),
    ("active-eprt", ["--ftp-port", "-"]),
])
def test_ftp_server_behind_dnat(tmp_path, mode, opts):
    need("curl", "vsftpd")
    root, want = blob(tmp_path)
    with _lab(tmp_path, DNAT_RAW + DNAT_REST) as lab:
        server = Vsftpd(lab, tmp_path, root, host="h1", address=H1, extra=DNAT_VSFTPD)
        try:
            out = tmp_path / f"{mode}.bin"
            p = curl_public(lab, out, *opts)
            assert p.returncode == 0 and md5_of(out) == want, (mode, p.returncode, p.stderr, server.stop())
            lines = conntrack_lines(lab, "-p", "tcp")
            log = server.stop()
        finally:
            server.stop()
        control = [line for line in lines if f"src={WEB} dst={ROUTER_WAN} " in line and "dport=21 " in line]
        assert control and all("helper=ftp" in line for line in control), "\n".join(lines)
        assert all(f"src={H1} dst={WEB} sport=21 " in line for line in control), "\n".join(lines)
        if mode == "passive-pasv":
            # the server said its own address; the client read the router's
            assert re.search(r'"227 Entering Passive Mode \(10,1,0,2,', log), log
            assert re.search(r"< 227 Entering Passive Mode \(203,0,113,1,", p.stderr), p.stderr
        if mode.startswith("passive"):
            data = [line for line in lines
                    if re.search(rf"src={WEB} dst={ROUTER_WAN} sport=\d+ dport=30\d\d\d ", line)
                    and re.search(rf"src={H1} dst={WEB} sport=30\d\d\d ", line)]
        else:
            # the server's data connection from 10.1.0.2:20, leaving as the router's address
            data = [line for line in lines if f"src={H1} dst={WEB} sport=20 " in line
                    and f"src={WEB} dst={ROUTER_WAN} " in line and "dport=20 " in line]
            assert re.search(r'"(PORT 203,0,113,80,|EPRT \|1\|203\.0\.113\.80\|)', log), log
        assert data, "\n".join(lines)


def test_passive_ftp_behind_dnat_without_the_helper_rule_fails(tmp_path):
    need("curl", "vsftpd")
    root, want = blob(tmp_path)
    with _lab(tmp_path, DNAT_REST) as lab:
        server = Vsftpd(lab, tmp_path, root, host="h1", address=H1, extra=DNAT_VSFTPD)
        try:
            out = tmp_path / "pasv.bin"
            start = time.monotonic()
            p = curl_public(lab, out, "--disable-epsv", "--no-ftp-skip-pasv-ip", max_time=15)
            took = time.monotonic() - start
            lines = conntrack_lines(lab, "-p", "tcp")
        finally:
            log = server.stop()
        assert p.returncode != 0 and md5_of(out) != want, (p.returncode, p.stderr)
        assert took < 20, took
        # the 227 reached the client untouched, and 10.1.0.2 is not reachable from outside
        assert re.search(r"< 227 Entering Passive Mode \(10,1,0,2,", p.stderr), (p.stderr, log)
        assert not any("helper=" in line for line in lines), "\n".join(lines)


# -- 6. abuse: more expectations than the policy allows -----------------------

MANY_PORTS_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 21)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(60)
c.sendall(b"220 fake\r\n")
buf = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        line = line.rstrip(b"\r")
        print(line.decode("latin-1"), flush=True)
        if line.upper() == b"QUIT":
            c.sendall(b"221 bye\r\n"); sys.exit(0)
        c.sendall(b"200 ok\r\n")
"""

MANY_PORTS_CLIENT = r"""
import json, select, socket, sys
c = socket.create_connection((sys.argv[1], 21), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = c.makefile("rb")
def reply():
    return f.readline().decode("latin-1").strip()
assert reply().startswith("220")
c.sendall(b"USER anonymous\r\n"); reply()
listeners = []
for _ in range(int(sys.argv[2])):
    l = socket.socket(); l.bind(("10.1.0.2", 0)); l.listen(1)
    p = l.getsockname()[1]
    listeners.append((l, p))
    # each PORT alone in a segment, right after a newline-ended one (the reply read back)
    c.sendall(b"PORT 10,1,0,2,%d,%d\r\n" % (p >> 8, p & 255)); assert reply().startswith("200")
print(json.dumps([p for _, p in listeners]), flush=True)
sys.stdin.readline()                     # the test has probed the router
got = []
for l, p in listeners:
    l.setblocking(False)
    try:
        a, _ = l.accept(); a.close(); got.append(p)
    except BlockingIOError:
        pass
    l.close()
c.sendall(b"QUIT\r\n"); reply()
print(json.dumps(got), flush=True)
"""

PROBE = r"""
import json, socket, sys
res = {}
for p in map(int, sys.argv[2:]):
    t = socket.socket(); t.settimeout(3)
    try:
        t.connect((sys.argv[1], p)); res[p] = "connected"
    except OSError as e:
        res[p] = type(e).__name__
    finally:
        t.close()
print(json.dumps(res))
"""


def test_more_port_commands_than_max_expected_keeps_only_the_newest(helpers_lab):
    lab = helpers_lab
    server = subprocess.Popen(["ip", "netns", "exec", lab.ns("web"), sys.executable, "-c", MANY_PORTS_SERVER, WEB],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = None
    try:
        lab.wait_listen("web", 21)
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns("h1"), sys.executable, "-c", MANY_PORTS_CLIENT,
                                   WEB, "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        first = client.stdout.readline()
        assert first, _stop(client)
        ports = json.loads(first)
        assert len(ports) == 4
        # the FTP policy's max_expected=1: each PORT evicted the previous expectation
        exp = conntrack_lines(lab, "expect")
        exp = [line for line in exp if "helper=ftp" in line]
        assert len(exp) == 1, exp
        assert f"dst={ROUTER_WAN} sport=0 dport={ports[-1]} " in exp[0], (ports, exp)
        assert f"src={WEB} " in exp[0], exp
        # earlier announced ports lead nowhere (the router itself answers: refused) ...
        probe = lab.run("web", sys.executable, "-c", PROBE, ROUTER_WAN, *map(str, ports[:-1]))
        earlier = json.loads(probe.stdout)
        assert all(v == "ConnectionRefusedError" for v in earlier.values()), earlier
        # ... the newest gets through to h1
        probe = lab.run("web", sys.executable, "-c", PROBE, ROUTER_WAN, str(ports[-1]))
        assert json.loads(probe.stdout) == {str(ports[-1]): "connected"}, probe.stdout
        out, err = client.communicate("go\n", timeout=20)
        assert client.returncode == 0, (out, err)
        assert json.loads(out.strip().splitlines()[-1]) == [ports[-1]], (ports, out)
        server_out = server.communicate(timeout=10)[0]
    finally:
        if client is not None:
            _stop(client)
        _stop(server)
    # every PORT reached the server rewritten to the router's address
    said = [line for line in server_out.splitlines() if line.startswith("PORT ")]
    assert len(said) == 4 and all(line.startswith("PORT 203,0,113,1,") for line in said), server_out
    # the newest was used by its connection; nothing is left expected
    assert not any("helper=ftp" in line for line in conntrack_lines(lab, "expect"))
