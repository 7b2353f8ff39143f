"""What a ruleset that cannot be loaded raises, and the did-you-mean hint.

A configuration error is reported early and with its location (STYLE B4), the
way iptables-restore says "line 12 failed": RuleSyntaxError carries the line
number and reads `line 12: unknown match "tpc"`.  Code that checks one value
without knowing the line raises OptionError; the parser adds the line.
"""
import difflib


class OptionError(ValueError):
    """A bad option or value, before the parser knows which line it was on."""


class RuleSyntaxError(ValueError):
    """A ruleset that cannot be loaded: the line number and what is wrong with it."""

    def __init__(self, lineno: int, message: str):
        super().__init__(lineno, message)
        self.lineno = lineno
        self.message = message

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.message}"


def did_you_mean(word: str, candidates) -> str:
    """` (did you mean "x"?)` for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown(what: str, word: str, candidates) -> OptionError:
    """`unknown option "--dprot" (did you mean "--dport"?)`."""
    return OptionError(f'unknown {what} "{word}"{did_you_mean(word, candidates)}')
