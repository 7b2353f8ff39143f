"""The bad-configuration corpus (tests/corpus/bad/): every broken lab file, router file and
ruleset is refused, and the message names the file, the key or the line.

Each corpus file starts with `# expect: FRAGMENT`, the words its error must contain.
  lab-*.toml     load_lab()     -> ConfigError "FILE: KEY: message"
  router-*.toml  load_router()  -> ConfigError "FILE: KEY: message"
  rules-*.rules  rules.restore() and `tunrouter iptables-restore --test FILE`
                                -> RuleSyntaxError "line N: message"
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunrouter.config import ConfigError, load_lab, load_router
from tunrouter.rules import RuleSyntaxError, restore

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "bad"
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".toml", ".rules"))
TOML = [p for p in FILES if p.suffix == ".toml"]
RULES = [p for p in FILES if p.suffix == ".rules"]


def expected(path: Path) -> str:
    first = path.read_text().split("\n", 1)[0]
    m = re.fullmatch(r"# expect: (.+)", first)
    assert m, f"{path.name}: the first line must be '# expect: FRAGMENT'"
    return m.group(1)


def test_the_corpus_is_large_enough():
    assert len(FILES) >= 50
    assert len(TOML) >= 40 and len(RULES) >= 10


@pytest.mark.parametrize("path", TOML, ids=lambda p: p.name)
def test_a_broken_config_file_is_refused_naming_file_and_key(path):
    load = load_lab if path.name.startswith("lab-") else load_router
    with pytest.raises(ConfigError) as err:
        load(path)
    text = str(err.value)
    assert text.startswith(f"{path}: "), text            # the file
    assert expected(path) in text, text                   # the key and the reason
    if err.value.key:                                     # "FILE: KEY: message"
        assert text == f"{path}: {err.value.key}: {err.value.message}"
    else:                                                 # TOML syntax: the line in the message
        assert re.search(r"line \d+", err.value.message), text


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_a_broken_ruleset_is_refused_naming_the_line(path):
    with pytest.raises(RuleSyntaxError) as err:
        restore(path.read_text())
    text = str(err.value)
    assert re.match(r"line \d+: ", text), text
    assert expected(path) in text, text
    # the line named is the one at fault or (COMMIT missing) one past the end
    assert 1 < err.value.lineno <= len(path.read_text().splitlines()) + 1


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_iptables_restore_test_refuses_it_with_the_line(path):
    p = subprocess.run([sys.executable, "-m", "tunrouter", "iptables-restore", "--test", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    frag = expected(path)
    assert frag.split(": ", 1)[-1] in p.stderr or frag in p.stderr, p.stderr
    assert re.search(r"line \d+: ", p.stderr), p.stderr
