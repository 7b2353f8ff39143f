"""Markers and root detection shared by every test directory."""
import os
import shutil

import pytest

NEEDS_ROOT = ("needs root, /dev/net/tun and network namespaces: "
              "run the suite as root (sudo ./scripts/test)")


def has_netns_privileges() -> bool:
    return os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("ip") is not None


def pytest_collection_modifyitems(config, items):
    if has_netns_privileges():
        return
    skip = pytest.mark.skip(reason=NEEDS_ROOT)
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)
