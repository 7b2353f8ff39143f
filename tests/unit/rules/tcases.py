"""Reader for the `.t` case files (iptables' extensions/*.t format, as iptables-test.py reads it).

    *nat                      table for the lines below (default: filter)
    :PREROUTING,OUTPUT        built-in chains each rule below is appended to
    RULE;EXPECTED;STATUS      EXPECTED "=" means RULE itself; "" an empty rule

STATUS: OK (saves as EXPECTED), FAIL (tunrouter and iptables both refuse it),
STRICT (tunrouter refuses what iptables accepts: a deliberate difference,
listed so the compatibility test can confirm iptables does accept it).
"""
from dataclasses import dataclass
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "cases"


@dataclass(frozen=True)
class Case:
    file: str
    lineno: int
    table: str
    chains: tuple[str, ...]
    rule: str
    expected: str
    status: str

    @property
    def id(self) -> str:
        return f"{self.file}:{self.lineno}"

    def restore_text(self) -> str:
        """The case as an iptables-restore file: the rule appended to each chain."""
        rules = "".join(f"-A {c} {self.rule}\n".replace(" \n", "\n") for c in self.chains)
        return f"*{self.table}\n{rules}COMMIT\n"

    def expected_lines(self) -> list[str]:
        text = self.rule if self.expected == "=" else self.expected
        return [f"-A {c} {text}".rstrip() for c in self.chains]


def load(path: Path) -> list[Case]:
    cases, table, chains = [], "filter", ()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table, chains = line[1:], ()
        elif line.startswith(":"):
            chains = tuple(line[1:].split(","))
        else:
            rule, expected, status = line.rsplit(";", 2)
            assert status in ("OK", "FAIL", "STRICT"), f"{path.name}:{lineno}: {status}"
            assert chains, f"{path.name}:{lineno}: no chain line before the rule"
            cases.append(Case(path.name, lineno, table, chains, rule, expected, status))
    return cases


def all_cases() -> list[Case]:
    return [c for p in sorted(CASES_DIR.glob("*.t")) for c in load(p)]


def rule_lines(saved: str) -> list[str]:
    return [line for line in saved.splitlines() if line.startswith("-A ")]
