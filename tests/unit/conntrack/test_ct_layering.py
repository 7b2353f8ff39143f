"""STYLE.md B2: the conntrack package does no I/O and reads no clock."""
import ast
import pathlib

import pytest

import tunrouter.conntrack

FORBIDDEN = {"os", "socket", "selectors", "time", "fcntl", "subprocess", "pytun", "pyroute2", "scapy"}
PACKAGE = pathlib.Path(tunrouter.conntrack.__file__).parent


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_conntrack_does_no_io(path):
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            bad += [node.module] if node.module.split(".")[0] in FORBIDDEN else []
    assert bad == [], f"{path} imports I/O modules: {bad}"
