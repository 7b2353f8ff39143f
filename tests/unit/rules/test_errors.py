"""Every broken ruleset of the corpus is refused at the right line with the right words."""
import pytest
from corpus import BROKEN

from tunrouter.rules import RuleSyntaxError, parse


def test_the_corpus_is_large_enough():
    assert len(BROKEN) >= 30


@pytest.mark.parametrize("broken", BROKEN, ids=lambda b: b.name)
def test_error_names_the_line(broken):
    with pytest.raises(RuleSyntaxError) as err:
        parse(broken.text)
    assert err.value.lineno == broken.line
    assert broken.message in err.value.message
    assert str(err.value) == f"line {broken.line}: {err.value.message}"


def test_message_format():
    with pytest.raises(RuleSyntaxError) as err:
        parse("*filter\n:INPUT ACCEPT [0:0]\n" + "\n" * 9 + "-A INPUT -m tpc -j ACCEPT\nCOMMIT\n")
    assert str(err.value) == 'line 12: unknown match "tpc" (did you mean "tcp"?)'
