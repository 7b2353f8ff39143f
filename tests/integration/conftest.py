"""Labs for integration tests: the shipped lab files under a unique name, always taken down."""
import contextlib
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "netns"


def tunrouter(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI, as a user runs it."""
    p = subprocess.run([sys.executable, "-m", "tunrouter", *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"tunrouter {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"needs {t}")


class Lab:
    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self.state_dir = Path("/run/tunrouter/labs") / name

    def ns(self, host: str) -> str:
        return f"{self.name}-{host}"

    def run(self, host: str, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["ip", "netns", "exec", self.ns(host), *cmd], capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{host}: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def wait_listen(self, host: str, port: int, timeout: float = 10) -> None:
        """Until a TCP server listens on port in host (lab commands start in the background)."""
        deadline = time.monotonic() + timeout
        while not self.run(host, "ss", "-Hltn", f"sport = :{port}").stdout.strip():
            assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.1)


@contextlib.contextmanager
def lab_from(src: Path, tmp_path: Path, edit=None):
    """Bring up src renamed to a fresh unique name (namespaces '<name>-<host>'); always take it down."""
    name = "t" + secrets.token_hex(3)
    text = re.sub(r'(?m)^name = "[^"]+"', f'name = "{name}"', src.read_text(), count=1)
    if edit is not None:
        text = edit(text)
    path = tmp_path / src.name
    path.write_text(text)
    for rules in src.parent.glob("*.rules"):     # rules files the lab names, relative to it
        if not (tmp_path / rules.name).exists():
            shutil.copy(rules, tmp_path / rules.name)
    try:
        tunrouter("lab", "up", str(path))
        yield Lab(name, path)
    finally:
        tunrouter("lab", "down", name, check=False)


@pytest.fixture
def home(tmp_path):
    with lab_from(LABS / "home.toml", tmp_path) as lab:
        yield lab


@pytest.fixture
def chain(tmp_path):
    with lab_from(LABS / "chain.toml", tmp_path) as lab:
        yield lab
