"""Reload: the router's file read again and applied at once, or not at all.

What a running router can take without a restart changes: the ruleset (its
counters and match state carried over where rules are unchanged, as
iptables-restore does), the conntrack sysctls, the helper settings, busy
polling (the runner applies it to the loop).  The
connection table is kept.  Everything is read and checked first; a file
that does not load, or that changes what only a restart can (interfaces,
routes, the control socket, the log and NFLOG sinks, the metrics endpoint,
reassembly), changes nothing and says why.
"""
from dataclasses import astuple

from tunrouter.config import ConfigError, RouterConfig, load_router
from tunrouter.conntrack.settings import SYSCTLS, Settings
from tunrouter.core.hooks import engine_for


class ReloadError(ValueError):
    """The file was not applied: why, with file and key or line."""


def _fixed(cfg: RouterConfig) -> tuple:
    """What a reload cannot change."""
    return ([astuple(i) for i in cfg.interfaces], [astuple(r) for r in cfg.routes],
            cfg.control, astuple(cfg.log), cfg.nflog_dir, cfg.metrics, cfg.ipfrag)


def reload(router, cfg: RouterConfig) -> RouterConfig:
    """Apply cfg's file as it is now to router; returns the new config (ReloadError: nothing changed)."""
    try:
        new = load_router(cfg.path, cfg.name)
    except ConfigError as e:              # with file, key and line
        raise ReloadError(f"{e}; nothing was changed") from None
    if _fixed(new) != _fixed(cfg):
        raise ReloadError(f"{cfg.path}: interfaces, routes, control, log, nflog, metrics and "
                          "ipfrag change only with a restart; nothing was changed")
    engine = engine_for(new.rules.text, previous=router.rules) if new.rules is not None else None
    settings = Settings(**new.conntrack)
    # Everything is read: apply.
    router.set_rules(engine)
    for name in SYSCTLS:
        router.conntrack.settings.set(name, settings.get(name))
    router.set_helper_settings(new.helpers)
    return new
