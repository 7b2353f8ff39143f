"""TUN and TAP devices: made inside their namespace, configured there, gone with the fd.

Devices are not persistent: the kernel deletes a TUN/TAP device when the
last file descriptor on it closes, so a router that exits in any way, SIGKILL
included, leaves no device behind.  Each device is created from inside its
target namespace (setns, then TUNSETIFF), so its name never appears in the
router's own namespace.
"""
import errno
import fcntl
import os
from dataclasses import dataclass

import pytun
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from tunrouter.config import ConfigError, InterfaceConfig, RouterConfig
from tunrouter.core.port import Kind
from tunrouter.driver import netns
from tunrouter.wire import vnet

# What an offloading TUN device lets its host's stack leave undone: checksums,
# TCP segmentation (with ECN's CWR) and, where the kernel has it (6.2 and
# later, v4 and v6 only together), UDP segmentation.  The v6 flags cost
# nothing: the device's IPv6 is off, and the core drops IPv6.
_OFFLOADS = vnet.TUN_F_CSUM | vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6 | vnet.TUN_F_TSO_ECN
_USO = vnet.TUN_F_USO4 | vnet.TUN_F_USO6


class DeviceError(Exception):
    """A device could not be made or configured; nothing of this router is left."""


@dataclass
class Device:
    index: int
    iface: InterfaceConfig
    tt: pytun.TunTapDevice

    @property
    def fd(self) -> int:
        return self.tt.fileno()

    def close(self) -> None:
        self.tt.close()


def preflight(cfg: RouterConfig) -> None:
    """Everything that can be checked before a device exists; raise ConfigError."""
    if os.geteuid() != 0:
        raise ConfigError(cfg.path, "", "needs root (CAP_NET_ADMIN) to create TUN/TAP devices "
                          "in network namespaces; run it with sudo")
    if not os.path.exists("/dev/net/tun"):
        raise ConfigError(cfg.path, "", "/dev/net/tun is missing; load the tun module (modprobe tun)")
    for i, iface in enumerate(cfg.interfaces):
        key = f"routers.{cfg.name}.interfaces[{i}]"
        if not netns.exists(iface.netns):
            what = f"host {iface.host!r}: namespace" if iface.host else "netns: namespace"
            raise ConfigError(cfg.path, f"{key}.{'host' if iface.host else 'netns'}",
                              f"{what} {iface.netns!r} does not exist")
        with netns.inside(iface.netns), IPRoute() as ipr:
            if ipr.link_lookup(ifname=iface.device):
                raise ConfigError(cfg.path, f"{key}.device",
                                  f"a device named {iface.device!r} already exists in namespace {iface.netns!r}")
            if iface.bridge is not None and not ipr.link_lookup(ifname=iface.bridge):
                raise ConfigError(cfg.path, f"{key}.bridge",
                                  f"no bridge {iface.bridge!r} in namespace {iface.netns!r}")


def open_devices(cfg: RouterConfig) -> list[Device]:
    """Create and configure every interface's device; on any failure close them all."""
    devices: list[Device] = []
    try:
        for i, iface in enumerate(cfg.interfaces):
            devices.append(Device(i, iface, _open(iface)))
    except BaseException:
        for d in devices:
            d.close()
        raise
    return devices


def _open(iface: InterfaceConfig) -> pytun.TunTapDevice:
    flags = (pytun.IFF_TUN if iface.kind is Kind.TUN else pytun.IFF_TAP) | pytun.IFF_NO_PI
    if iface.offload:
        flags |= pytun.IFF_VNET_HDR
    with netns.inside(iface.netns):
        try:
            tt = pytun.TunTapDevice(name=iface.device, flags=flags)
        except pytun.Error as e:
            raise DeviceError(f"{iface.netns}/{iface.device}: cannot create {iface.kind.value} device: {e}")
        try:
            if iface.offload:
                _offload(tt.fileno())
            _configure(iface)
        except (NetlinkError, OSError) as e:
            tt.close()
            raise DeviceError(f"{iface.netns}/{iface.device}: cannot configure: {e}")
    os.set_blocking(tt.fileno(), False)
    return tt


def _offload(fd: int) -> None:
    """TUNSETOFFLOAD: the device's features follow; a kernel without USO refuses it whole."""
    try:
        fcntl.ioctl(fd, vnet.TUNSETOFFLOAD, _OFFLOADS | _USO)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        fcntl.ioctl(fd, vnet.TUNSETOFFLOAD, _OFFLOADS)


def _configure(iface: InterfaceConfig) -> None:
    """Inside the namespace: no IPv6 chatter, MTU, bridge or address, link up, default route."""
    try:
        netns.write_sysctl(f"net.ipv6.conf.{iface.device}.disable_ipv6", "1")
    except OSError as e:
        if e.errno != errno.ENOENT:          # IPv6 disabled on the host: nothing to silence
            raise
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=iface.device)[0]
        ipr.link("set", index=idx, mtu=iface.mtu)
        if iface.bridge is not None:
            ipr.link("set", index=idx, master=ipr.link_lookup(ifname=iface.bridge)[0])
        elif iface.host_address is not None:
            addr, plen = iface.host_address.split("/")
            ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
        ipr.link("set", index=idx, state="up")
        if iface.gateway:
            gw = "%d.%d.%d.%d" % tuple(iface.address)
            ipr.route("replace", dst="0.0.0.0/0", gateway=gw, oif=idx)
