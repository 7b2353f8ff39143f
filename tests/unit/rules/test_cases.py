"""Every `.t` case: the rule saves as iptables-save prints it, or is refused on its line."""
import pytest
from tcases import all_cases, rule_lines

from tunrouter.rules import RuleSyntaxError, parse, save

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case):
    text = case.restore_text()
    if case.status == "OK":
        assert sorted(rule_lines(save(parse(text)))) == sorted(case.expected_lines())
        return
    with pytest.raises(RuleSyntaxError) as err:
        parse(text)
    assert err.value.lineno == 2, str(err.value)


def test_there_are_many_cases():
    assert len(CASES) > 300
