"""`tunrouter helpers reload` and `tunrouter helper new NAME`.

reload asks a running router to re-read its helpers (helpers_reload);
new writes a third-party helper package to start from: a toy line protocol
("LISTEN <port>\\r\\n" from the client: the server connects back to that
port), its entry point, a capture fixture and a test that replays it.
"""
import keyword
import re
import sys
import textwrap
from pathlib import Path

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add_parsers(sub, add_target, resolve) -> None:
    p = sub.add_parser("helpers", aliases=["helper"],
                       help="conntrack helpers: reload a router's, or start a new one",
                       description="reload: re-read a running router's helpers (entry points "
                                   "reloaded, connections kept); new: write a helper package.")
    act = p.add_subparsers(dest="helpers_verb", required=True, metavar="ACTION")
    r = act.add_parser("reload", help="reload the helpers of a running router")
    add_target(r)
    r.set_defaults(func=lambda a: run_reload(a, resolve(a)))
    n = act.add_parser("new", help="write a helper package skeleton: tunrouter-helper-NAME/")
    n.add_argument("name", help="the helper's name (lower case letters, digits, '_')")
    n.add_argument("--dir", default=".", help="where to write it (default: here)")
    n.add_argument("--port", type=int, default=7777, help="the toy protocol's port (default 7777)")
    n.set_defaults(func=run_new)


def run_reload(args, sock: str) -> int:
    from tunrouter.driver.control import request

    r = request(sock, "helpers_reload", timeout=30.0)
    print(f"helpers: {', '.join(r['helpers'])}")
    if r["reloaded_modules"]:
        print(f"modules reloaded: {', '.join(r['reloaded_modules'])}")
    if r["removed"]:
        print(f"removed: {', '.join(r['removed'])}")
    print(f"connections given the new helpers: {r['connections']}; "
          f"no longer inspected: {r['detached']}")
    return 0


def run_new(args) -> int:
    try:
        root = new_helper(args.name, Path(args.dir), args.port)
    except (ValueError, OSError) as e:
        print(f"tunrouter helper new: {e}", file=sys.stderr)
        return 2
    print(f"wrote {root}/")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(root)}")
    print(f"next: cd {root} && python -m pytest -q tests; "
          f"tunrouter replay tests/{args.name}.pcap --helper tunrouter_helper_{args.name}/__init__.py; "
          f"pip install -e {root} to make it a helper every router loads")
    return 0


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) + "Helper"


def new_helper(name: str, where: Path, port: int = 7777) -> Path:
    """Write where/tunrouter-helper-NAME/ and its capture fixture; return its path."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a helper name (lower case letters, digits and '_', "
                         "starting with a letter)")
    if not 1 <= port <= 65535:
        raise ValueError(f"--port {port}: expected 1 to 65535")
    root = where / f"tunrouter-helper-{name}"
    if root.exists():
        raise ValueError(f"{root} exists; not overwriting it")
    pkg = f"tunrouter_helper_{name}"
    fields = {"name": name, "pkg": pkg, "cls": class_name(name), "port": port}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{pkg}/__init__.py": PACKAGE,
        "tests/capture.py": CAPTURE,
        f"tests/test_{name}.py": TEST,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip().format(**fields))
    # the fixture, made by the skeleton's own capture.py
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_capture_{name}", root / "tests" / "capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_capture(root / "tests" / f"{name}.pcap")
    return root


PYPROJECT = '''
    [build-system]
    requires = ["setuptools>=77"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "tunrouter-helper-{name}"
    version = "0.1.0"
    description = "A tunrouter conntrack helper for the {name} protocol"
    requires-python = ">=3.11"
    dependencies = ["tunrouter"]

    [project.optional-dependencies]
    test = ["pytest>=7", "scapy>=2.5"]

    [project.entry-points."tunrouter.helpers"]
    {name} = "{pkg}:{cls}"

    [tool.setuptools]
    packages = ["{pkg}"]

    [tool.ruff]
    line-length = 110

    [tool.pytest.ini_options]
    pythonpath = ["."]
    testpaths = ["tests"]
'''

README = '''
    # tunrouter-helper-{name}

    A conntrack helper for tunrouter.  The toy protocol it starts from: on a TCP
    connection to port {port}, the client sends `LISTEN <port>\\r\\n`, and the server
    then connects back to the client on that port.  The helper expects that
    connection (it is RELATED), and under NAT rewrites the announced port.

        python -m pytest -q tests                     # replays tests/{name}.pcap
        tunrouter replay tests/{name}.pcap --helper {pkg}/__init__.py
        pip install -e .                              # every router now has "{name}"

    In a router or lab file attach it by a raw-table rule
    (`-A PREROUTING -p tcp --dport {port} -j CT --helper {name}`) or by port:

        [routers.r1.helpers]
        auto = true
        ports = {{ {name} = [{port}] }}

    After editing the code, `tunrouter helpers reload --lab LAB` swaps it into
    the running router; its connections are kept.
'''

PACKAGE = '''
    """The {name} conntrack helper (tunrouter): a toy line protocol.

    The client sends the line "LISTEN <port>" (CRLF-terminated) on a connection
    to port {port}; the server then connects back to the client's <port>.  help() sees each
    packet's payload (bytes) and returns a Found with the connection to expect,
    or None.  Under NAT the router picks the port the client is reachable on
    and rewrites the announced digits: that is what Rewrite(start, end, text) says.
    """
    from tunrouter.helpers.base import ORIGINAL, TCP, Found, Helper, Packet, Policy, Rewrite

    COMMAND = b"LISTEN "


    def _port_text(addr: bytes, port: int) -> bytes:
        return str(port).encode()


    class {cls}(Helper):
        name = "{name}"
        proto = TCP
        ports = ({port},)
        policy = Policy(max_expected=1, timeout=60.0)

        def help(self, pkt: Packet) -> Found | None:
            data = pkt.payload
            if pkt.direction != ORIGINAL or not data.startswith(COMMAND):
                return None
            end = data.find(b"\\r\\n")
            if end < 0:
                return Found(drop="partial LISTEN command")   # as the kernel's helpers do
            digits = data[len(COMMAND):end]
            if not digits.isdigit() or not 1 <= int(digits) <= 65535:
                return Found(log=f"bad LISTEN port {{digits!r}}")
            port = int(digits)
            return Found([pkt.expect_to_sender(
                port, rewrite=Rewrite(len(COMMAND), end, _port_text))])
'''

CAPTURE = '''
    """The test capture: a {name} session and the server's connection back.

        python tests/capture.py OUT.pcap
    """
    import sys

    from scapy.all import IP, TCP, Raw, wrpcap

    CLIENT, SERVER = "10.0.0.2", "192.0.2.10"
    CPORT, LISTEN_PORT = 40000, 50000


    def packets():
        c, s = 1000, 5000
        pkts = [
            IP(src=CLIENT, dst=SERVER) / TCP(sport=CPORT, dport={port}, flags="S", seq=c),
            IP(src=SERVER, dst=CLIENT) / TCP(sport={port}, dport=CPORT, flags="SA", seq=s, ack=c + 1),
            IP(src=CLIENT, dst=SERVER) / TCP(sport=CPORT, dport={port}, flags="A", seq=c + 1, ack=s + 1),
        ]
        line = b"LISTEN %d\\r\\n" % LISTEN_PORT
        pkts.append(IP(src=CLIENT, dst=SERVER) / TCP(sport=CPORT, dport={port}, flags="PA",
                                                      seq=c + 1, ack=s + 1) / Raw(line))
        pkts.append(IP(src=SERVER, dst=CLIENT) / TCP(sport={port}, dport=CPORT, flags="A",
                                                      seq=s + 1, ack=c + 1 + len(line)))
        # the server connects back: RELATED thanks to the helper
        pkts.append(IP(src=SERVER, dst=CLIENT) / TCP(sport=20000, dport=LISTEN_PORT, flags="S", seq=9000))
        pkts.append(IP(src=CLIENT, dst=SERVER) / TCP(sport=LISTEN_PORT, dport=20000, flags="SA",
                                                      seq=7000, ack=9001))
        for i, p in enumerate(pkts):
            p.time = 1_700_000_000 + i * 0.01
        return pkts


    def write_capture(path) -> None:
        wrpcap(str(path), packets())          # bare IPv4 packets: link type raw IP


    if __name__ == "__main__":
        write_capture(sys.argv[1] if len(sys.argv) > 1 else "{name}.pcap")
'''

TEST = '''
    """The {name} helper replayed over a capture made here: the connection back is RELATED."""
    import importlib.util
    from pathlib import Path

    from scapy.all import IP, raw, rdpcap
    from tunrouter.helpers import HelperSettings
    from tunrouter.replay import Record, Replay

    from {pkg} import {cls}

    HERE = Path(__file__).parent


    def _capture():
        spec = importlib.util.spec_from_file_location("{name}_capture", HERE / "capture.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


    def replay(path):
        records = [Record(float(p.time), raw(p[IP])) for p in rdpcap(str(path))]
        settings = HelperSettings(auto=True, ports={{"{name}": {cls}.ports}})
        return Replay(records, {{"{name}": {cls}()}}, settings).run()


    def test_listen_opens_the_connection_back(tmp_path):
        path = tmp_path / "{name}.pcap"
        _capture().write_capture(path)
        steps = replay(path)
        assert [s.ctstate for s in steps] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                              "ESTABLISHED", "RELATED", "ESTABLISHED"]
        assert len(steps[3].expects) == 1 and "dport=50000" in steps[3].expects[0]
        assert all(s.sent for s in steps)          # everything forwarded


    def test_helper_without_a_listen_finds_nothing():
        from tunrouter.helpers.base import Packet

        pkt = Packet(b"HELLO\\r\\n", 0, 1, None, None, False, None)
        assert {cls}().help(pkt) is None
'''
