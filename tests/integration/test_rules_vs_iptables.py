"""tunrouter's rules against the real iptables-restore / iptables-save of this machine.

Every `.t` case and every corpus ruleset goes to the real tools in a
throwaway network namespace: what tunrouter accepts, iptables accepts, and
tunrouter's iptables-save text equals iptables' own (the `#` lines aside).
Cases marked FAIL must be refused by iptables too; STRICT ones are refused by
tunrouter only, on purpose, and iptables must accept them (that is what makes
them a documented difference rather than a bug).

A real restore is used, not only `iptables-restore --test`: with the nf_tables
backend --test checks syntax alone (DNAT in *filter passes it), and the
kernel's own checks are part of what we compare.
"""
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "rules"))
import corpus  # noqa: E402
import tcases  # noqa: E402

from tunrouter.rules import RuleSyntaxError, parse, save  # noqa: E402

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def ns():
    for tool in ("iptables-restore", "iptables-save", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    name = "tr-rules-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield Netns(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Netns:
    def __init__(self, name: str):
        self.name = name
        self.has_ftp_helper = self.restore(
            "*raw\n-A PREROUTING -p tcp -j CT --helper ftp\nCOMMIT\n").returncode == 0

    def run(self, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], input=stdin,
                              capture_output=True, text=True, timeout=30)

    def restore(self, text: str) -> subprocess.CompletedProcess:
        """A real restore onto an empty ruleset."""
        self.run("nft", "flush", "ruleset")
        return self.run("iptables-restore", stdin=text)

    def save(self) -> str:
        return self.run("iptables-save").stdout


def _without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def _kernel_lacks_helper(ns: Netns, text: str) -> bool:
    return "--helper" in text and "-j CT" in text and not ns.has_ftp_helper


@pytest.mark.parametrize("case", tcases.all_cases(), ids=lambda c: c.id)
def test_t_case_as_iptables(ns, case):
    text = case.restore_text()
    real = ns.restore(text)
    if case.status == "FAIL":
        assert real.returncode != 0, f"iptables accepts what tunrouter refuses:\n{text}"
        return
    if _kernel_lacks_helper(ns, text):
        pytest.skip("this kernel has no conntrack helpers built in")
    assert real.returncode == 0, f"iptables refuses:\n{text}{real.stderr}"
    if case.status == "OK":
        assert _without_comments(save(parse(text))) == _without_comments(ns.save())
    else:
        with pytest.raises(RuleSyntaxError):
            parse(text)


@pytest.mark.parametrize("path", corpus.GOOD, ids=lambda p: p.name)
def test_corpus_ruleset_as_iptables(ns, path):
    text = path.read_text()
    ours = save(parse(text))
    real = ns.restore(text)
    assert real.returncode == 0, real.stderr
    assert _without_comments(ours) == _without_comments(ns.save())
    assert ns.run("iptables-restore", "--test", stdin=text).returncode == 0


@pytest.mark.parametrize("broken", corpus.BROKEN, ids=lambda b: b.name)
def test_broken_corpus_as_iptables(ns, broken):
    """tunrouter refuses every one; iptables refuses those marked so, on its real restore."""
    with pytest.raises(RuleSyntaxError):
        parse(broken.text)
    if broken.iptables_refuses:
        assert ns.restore(broken.text).returncode != 0, "iptables accepts it"
