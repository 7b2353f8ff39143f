"""The pure packages do no I/O: enforced here rather than by review (STYLE.md B2)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "tunrouter"
PURE = ["wire", "core", "conntrack", "nat", "rules"]
FORBIDDEN = {"os", "socket", "selectors", "select", "time", "fcntl", "subprocess",
             "pytun", "pyroute2", "scapy"}


def _modules():
    return [p for d in PURE if (ROOT / d).is_dir() for p in sorted((ROOT / d).rglob("*.py"))]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_packages_do_no_io(path):
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in FORBIDDEN:
                bad.append(node.module)
    assert bad == [], f"{path} imports I/O modules: {bad}"


def test_there_are_pure_modules_to_check():
    assert len(_modules()) >= 10
