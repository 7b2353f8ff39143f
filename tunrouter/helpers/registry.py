"""The helpers a router can attach: the built-in table and third-party ones.

A third-party helper lives in its own package and announces itself through
the `tunrouter.helpers` entry-point group (name = "module:Class"); a name
found there may shadow no built-in one.
"""
from importlib.metadata import entry_points

from tunrouter.helpers.amanda import Amanda
from tunrouter.helpers.base import Helper
from tunrouter.helpers.ftp import Ftp
from tunrouter.helpers.irc import Irc
from tunrouter.helpers.tftp import Tftp

BUILTIN: dict[str, type[Helper]] = {h.name: h for h in (Ftp, Tftp, Irc, Amanda)}
GROUP = "tunrouter.helpers"


class HelperLoadError(Exception):
    """An entry point that does not load or is not a Helper."""


def available() -> dict[str, type[Helper]]:
    """Every helper by name: built-ins, then entry points (a broken one raises HelperLoadError)."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN:
            raise HelperLoadError(f"entry point {ep.value!r} ({GROUP}) takes the built-in name {ep.name!r}")
        try:
            cls = ep.load()
        except Exception as e:
            raise HelperLoadError(f"helper {ep.name!r} ({ep.value}): cannot load: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Helper)):
            raise HelperLoadError(f"helper {ep.name!r} ({ep.value}) is not a Helper subclass")
        found[ep.name] = cls
    return found
