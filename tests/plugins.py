"""Third-party helpers for tests: a module and its dist-info (with a `tunrouter.helpers`
entry point) in a directory put on sys.path, found as an installed package is."""
import importlib
import sys
import textwrap
from pathlib import Path


def install_helper_dist(root: Path, monkeypatch, entries: dict[str, str], modules: dict[str, str],
                        dist: str = "tunrouter_helper_test") -> Path:
    """entries: name -> "module:Class"; modules: module name -> source.  Returns root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tunrouter.helpers]\n" + "".join(f"{n} = {v}\n" for n, v in entries.items()))
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


TOY_SOURCE = '''
from tunrouter.helpers.base import ORIGINAL, TCP, Found, Helper, Policy, Rewrite


class Toy(Helper):
    name, proto, ports = "{name}", TCP, (7777,)
    policy = Policy(max_expected=1, timeout=300.0)

    def new_state(self):
        return {{"seen": 0}}

    def help(self, pkt):
        pkt.state["seen"] += 1
        if pkt.direction == ORIGINAL and pkt.payload.startswith(b"LISTEN "):
            end = pkt.payload.index(b"\\r\\n")
            port = int(pkt.payload[7:end])
            return Found([pkt.expect_to_sender(
                port, rewrite=Rewrite(7, end, lambda addr, p: str(p).encode()))])
        return None
'''


def toy_source(name: str) -> str:
    return TOY_SOURCE.format(name=name)
