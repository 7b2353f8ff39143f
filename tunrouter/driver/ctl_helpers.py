"""Control-socket commands for conntrack helpers: their state, and reloading them.

`helpers_reload` re-reads the `tunrouter.helpers` entry points: the modules
of third-party helpers are reloaded (importlib.reload), the helper objects
swapped on the router and on its live connections (Router.replace_helpers),
and every helper is switched back on in the guard.  Connections and
expectations stay.  A helper that no longer loads leaves everything as it
was and the request fails with the reason.
"""
import importlib
import sys
from importlib.metadata import entry_points

from tunrouter.helpers.registry import BUILTIN, GROUP, HelperLoadError, available


def helper_state(router) -> dict:
    """The helpers' part of `stats`: loaded, faults, switched off, live expectations."""
    g = router.guard
    return {"loaded": sorted(router.helpers), "faults": dict(sorted(g.faults.items())),
            "disabled": sorted(g.disabled), "expectations": router.conntrack.expects.count}


def reload_classes(current: dict) -> tuple[dict, list[str]]:
    """Reload the modules of third-party helpers (those in current, by name -> object, and
    those the entry points name), then read the entry points again.  Returns the
    classes by name and the modules reloaded."""
    modules: list[str] = []
    for h in current.values():
        cls = type(h)
        if BUILTIN.get(cls.name) is not cls and cls.__module__ not in modules:
            modules.append(cls.__module__)
    for ep in entry_points(group=GROUP):
        if ep.module not in modules:
            modules.append(ep.module)
    reloaded = []
    for name in modules:
        mod = sys.modules.get(name)
        if mod is None:                    # new, or never imported: ep.load() imports it
            continue
        try:
            importlib.reload(mod)
        except Exception as e:          # third-party code: a clear answer, the router untouched
            raise HelperLoadError(f"module {name}: cannot reload: {type(e).__name__}: {e}") from e
        reloaded.append(name)
    return available(), reloaded


def reload_helpers(router) -> dict:
    """Swap in freshly loaded helpers; see the module's docstring."""
    from tunrouter.rules.targets import register_ct_helper

    try:
        classes, reloaded = reload_classes(router.helpers)
        new = {}
        for name, cls in classes.items():
            old = router.helpers.get(name)
            new[name] = old if old is not None and type(old) is cls else cls()
    except HelperLoadError as e:
        raise ValueError(f"helpers not reloaded: {e}") from None
    except Exception as e:  # noqa: BLE001 - a helper's constructor
        raise ValueError(f"helpers not reloaded: cannot create a helper: {type(e).__name__}: {e}") from None
    for name, cls in classes.items():
        register_ct_helper(name, cls.proto)
    removed = sorted(set(router.helpers) - set(new))
    counts = router.replace_helpers(new)
    return {"helpers": sorted(new), "reloaded_modules": reloaded, "removed": removed, **counts}


def helpers_handlers(router) -> dict:
    return {
        "helpers": lambda req: helper_state(router),
        "helpers_reload": lambda req: reload_helpers(router),
    }
