"""Router and lab files (TOML): load, check every key, and say precisely what is wrong.

A lab file has a [lab] table, [hosts.NAME] tables and [routers.NAME] tables
whose interfaces name a `host`.  A router file (for `tunrouter run`) has one
[routers.NAME] table whose interfaces name an existing `netns` instead.
Nothing here touches the system: checks that need it (namespaces exist,
device names are free, root) are the driver's preflight.
"""
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import netaddr

from tunrouter.core.port import Kind
from tunrouter.helpers import HelperSettings

RUN_DIR = Path("/run/tunrouter")
IFNAMSIZ = 15                                   # longest Linux interface name
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IFNAME = re.compile(r"^[^/\s:]+$")


class ConfigError(Exception):
    """A bad router or lab file: which file, which key, what was expected."""

    def __init__(self, path: str | Path, key: str, message: str):
        self.path, self.key, self.message = str(path), key, message
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass(frozen=True)
class InterfaceConfig:
    name: str                    # the router's port name (-i/-o, IN=/OUT=)
    device: str                  # the device's name inside the namespace
    kind: Kind
    netns: str                   # the namespace the device goes into
    address: bytes               # the router's own address on this link
    prefixlen: int
    host_address: str | None     # "a.b.c.d/len" configured on the device, or None
    gateway: bool                # default route in the namespace via the router
    mtu: int
    bridge: str | None           # enslave the device to this bridge instead of addressing it
    mac: bytes                   # TAP: the router's MAC on this link
    host: str | None = None      # lab host name, when from a lab file
    offload: bool = False        # IFF_VNET_HDR + TUNSETOFFLOAD: checksums and TSO left to devices


@dataclass(frozen=True)
class RouteConfig:
    text: str
    prefix: bytes
    prefixlen: int
    via: bytes | None
    port: str | None


@dataclass(frozen=True)
class RouterConfig:
    name: str
    path: Path
    interfaces: list[InterfaceConfig]
    routes: list[RouteConfig]
    control: Path                # the control socket
    conntrack: dict[str, int] = field(default_factory=dict)   # nf_conntrack_* sysctls by full name
    ipfrag: dict[str, int] = field(default_factory=dict)      # Defrag() arguments
    rules: "RulesConfig | None" = None                         # the ruleset loaded at start
    log: "LogConfig" = field(default_factory=lambda: LogConfig())
    nflog_dir: Path | None = None     # NFLOG pcap files: <dir>/nflog-<group>.pcap
    helpers: HelperSettings = field(default_factory=HelperSettings)   # [routers.NAME.helpers]
    metrics: tuple[str, int] | None = None    # [routers.NAME.metrics] listen: the Prometheus endpoint
    busy_poll_us: int = 0        # after a frame, poll without sleeping this long (0: off)


@dataclass(frozen=True)
class RulesConfig:
    path: Path                   # the iptables-save file, resolved against the TOML file
    text: str                    # its text, checked (parsed and validated) at load


@dataclass(frozen=True)
class LogConfig:
    """[routers.NAME.log]: where LOG lines go (None: the router's own log, stderr)."""
    file: str = "stderr"         # a path, "stderr" or "syslog"
    format: str = "kernel"       # "kernel" (the kernel's line) or "json"


@dataclass(frozen=True)
class HostConfig:
    name: str
    netns: str
    run: list[str]
    bridge: bool                 # a bridge br0 in the namespace for TAP links between routers
    segment: str | None = None   # the host whose br0 this host plugs into (by a veth pair)
    address: str | None = None   # "a.b.c.d/len" on this host's eth0 on that segment
    gateway: bytes | None = None # default route via this address on the segment


@dataclass(frozen=True)
class LabConfig:
    name: str
    path: Path
    hosts: dict[str, HostConfig]
    routers: dict[str, RouterConfig] = field(default_factory=dict)


class _Table:
    """A TOML table being read: each get() consumes a key; done() rejects the rest."""

    def __init__(self, path: Path, where: str, data, what: str = "a table"):
        if not isinstance(data, dict):
            raise ConfigError(path, where, f"expected {what}, got {_type(data)}")
        self.path, self.where, self.data, self.seen = path, where, data, set()

    def key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def get(self, k: str, typ, default=..., check=None):
        self.seen.add(k)
        if k not in self.data:
            if default is ...:
                raise ConfigError(self.path, self.key(k), f"missing; expected {_typename(typ)}")
            return default
        v = self.data[k]
        if (typ is int or typ == (int, float)) and isinstance(v, bool) or not isinstance(v, typ):
            raise ConfigError(self.path, self.key(k), f"expected {_typename(typ)}, got {_type(v)}")
        if check is not None:
            problem = check(v)
            if problem:
                raise ConfigError(self.path, self.key(k), problem)
        return v

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise ConfigError(self.path, self.key(extra[0]),
                              f"unknown key; expected one of: {', '.join(sorted(self.seen))}")


def _type(v) -> str:
    return {bool: "a boolean", int: "an integer", str: "a string", list: "an array",
            dict: "a table", float: "a float"}.get(type(v), type(v).__name__)


def _typename(typ) -> str:
    if typ == (int, float):
        return "a number"
    return _type(typ()) if typ in (bool, int, str, list, dict, float) else typ.__name__


def _name_problem(v: str) -> str | None:
    if not _NAME.match(v):
        return f"{v!r} is not a valid name (letters, digits, '_', '.', '-')"
    return None


def _ifname_problem(v: str) -> str | None:
    if not v or len(v) > IFNAMSIZ or not _IFNAME.match(v) or v in (".", ".."):
        return f"{v!r} is not a valid interface name (1 to {IFNAMSIZ} characters, no '/', ':' or spaces)"
    return None


def _cidr(path, key: str, v: str) -> netaddr.IPNetwork:
    try:
        if "/" not in v:
            raise ValueError
        net = netaddr.IPNetwork(v, version=4)
    except (ValueError, netaddr.AddrFormatError):
        raise ConfigError(path, key, f'expected an IPv4 address with prefix length like "10.1.0.1/24", got {v!r}')
    return net


def _addr(path, key: str, v: str) -> bytes:
    try:
        return netaddr.IPAddress(v, version=4).packed
    except (ValueError, netaddr.AddrFormatError):
        raise ConfigError(path, key, f"expected an IPv4 address, got {v!r}")


def _mac_for(router: str, port: str) -> bytes:
    """A stable, locally administered unicast MAC for a router port."""
    digest = hashlib.sha256(f"{router}/{port}".encode()).digest()
    return bytes([0x02]) + digest[:5]


def _parse_route(path: Path, key: str, text: str, ports: set[str]) -> RouteConfig:
    """`ip route` syntax: PREFIX|default [via GATEWAY] [dev PORT]."""
    words = text.split()
    if not words:
        raise ConfigError(path, key, 'empty route; expected "PREFIX via GATEWAY" or "PREFIX dev PORT"')
    dst = "0.0.0.0/0" if words[0] == "default" else words[0]
    if "/" not in dst:
        dst += "/32"
    net = _cidr(path, key, dst)
    if net.ip != net.network:
        raise ConfigError(path, key, f"{words[0]} has host bits set; did you mean {net.cidr}?")
    via = port = None
    rest = words[1:]
    while rest:
        if len(rest) < 2 or rest[0] not in ("via", "dev"):
            raise ConfigError(path, key, f"cannot read {' '.join(rest)!r}; expected 'via GATEWAY' or 'dev PORT'")
        if rest[0] == "via":
            via = _addr(path, key, rest[1])
        else:
            if rest[1] not in ports:
                raise ConfigError(path, key, f"no interface named {rest[1]!r} on this router")
            port = rest[1]
        rest = rest[2:]
    if via is None and port is None:
        raise ConfigError(path, key, "a route needs 'via GATEWAY' or 'dev PORT'")
    return RouteConfig(text, net.network.packed, net.prefixlen, via, port)


def _router(path: Path, name: str, data, lab: str | None, hosts: dict[str, HostConfig] | None) -> RouterConfig:
    where = f"routers.{name}"
    t = _Table(path, where, data)
    default_sock = RUN_DIR / (f"{lab}-{name}.sock" if lab else f"{name}.sock")
    control = Path(t.get("control", str, str(default_sock)))
    raw_ifaces = t.get("interfaces", list)
    if not raw_ifaces:
        raise ConfigError(path, f"{where}.interfaces", "expected at least one [[interfaces]] table")
    ifaces: list[InterfaceConfig] = []
    for i, raw in enumerate(raw_ifaces):
        ifaces.append(_interface(path, f"{where}.interfaces[{i}]", raw, name, hosts))
    names, addrs, devs = set(), {}, set()
    for i, iface in enumerate(ifaces):
        key = f"{where}.interfaces[{i}]"
        if iface.name in names:
            raise ConfigError(path, f"{key}.name", f"port name {iface.name!r} is used twice")
        names.add(iface.name)
        if iface.address in addrs:
            raise ConfigError(path, f"{key}.address", f"address already used by port {addrs[iface.address]!r}")
        addrs[iface.address] = iface.name
        if (iface.netns, iface.device) in devs:
            raise ConfigError(path, f"{key}.device",
                              f"device {iface.device!r} is used twice in namespace {iface.netns!r}")
        devs.add((iface.netns, iface.device))
    routes = []
    for i, text in enumerate(t.get("routes", list, [])):
        if not isinstance(text, str):
            raise ConfigError(path, f"{where}.routes[{i}]", f"expected a string, got {_type(text)}")
        routes.append(_parse_route(path, f"{where}.routes[{i}]", text, names))
    conntrack = _conntrack(path, f"{where}.conntrack", t.get("conntrack", dict, {}))
    # before the rules: a third-party helper's name must parse in CT --helper
    helpers = _helpers(path, f"{where}.helpers", t.get("helpers", dict, {}))
    ipfrag = _ipfrag(path, f"{where}.ipfrag", t.get("ipfrag", dict, {}))
    rules = _rules(path, f"{where}.rules", t.get("rules", str, None))
    logcfg = _log(path, f"{where}.log", t.get("log", dict, {}))
    nflog = _Table(path, f"{where}.nflog", t.get("nflog", dict, {}))
    nflog_dir = nflog.get("dir", str, None, check=lambda v: None if v else "expected a directory path")
    nflog.done()
    nflog_dir = (path.parent / nflog_dir if nflog_dir else
                 control.with_name(control.name.removesuffix(".sock") + "-nflog"))
    metrics = _metrics(path, f"{where}.metrics", t.get("metrics", dict, {}))
    busy_poll_us = t.get("busy_poll_us", int, 0, check=lambda v: None if 0 <= v <= 10_000_000
                         else f"expected 0 (off) to 10000000 microseconds, got {v}")
    t.done()
    return RouterConfig(name, path, ifaces, routes, control, conntrack, ipfrag, rules, logcfg,
                        nflog_dir, helpers, metrics, busy_poll_us)


def _metrics(path: Path, key: str, data) -> tuple[str, int] | None:
    """[metrics] listen = "ADDRESS:PORT": serve Prometheus metrics there (off without it)."""
    t = _Table(path, key, data)
    listen = t.get("listen", str, None)
    t.done()
    if listen is None:
        return None
    host, colon, port = listen.rpartition(":")
    try:
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError
        netaddr.IPAddress(host, version=4)
    except (ValueError, netaddr.AddrFormatError):
        raise ConfigError(path, f"{key}.listen",
                          f'expected "ADDRESS:PORT" like "127.0.0.1:9101", got {listen!r}') from None
    return host, int(port)


def helper_classes(path: str | Path, key: str) -> dict:
    """Every helper class by name (built-ins and the `tunrouter.helpers` entry points),
    each registered so that `CT --helper NAME` parses; a broken entry point is a ConfigError."""
    from tunrouter.helpers.registry import HelperLoadError, available
    from tunrouter.rules.targets import register_ct_helper

    try:
        classes = available()
    except HelperLoadError as e:
        raise ConfigError(path, key, f"{e} (entry point group tunrouter.helpers)")
    for name, cls in classes.items():
        register_ct_helper(name, cls.proto)
    return classes


def _helpers(path: Path, where: str, data: dict) -> HelperSettings:
    """[helpers]: attaching by port, the ports, and what a faulting helper costs."""
    classes = helper_classes(path, where)
    t = _Table(path, where, data)
    positive = lambda v: None if v > 0 else f"expected a positive number, got {v}"
    auto = t.get("auto", bool, False)
    ports_data = t.get("ports", dict, {})
    on_fault = t.get("on_fault", str, "accept", check=lambda v: None if v in ("accept", "drop")
                     else f'expected "accept" or "drop", got {v!r}')
    max_faults = t.get("max_faults", int, 5, check=lambda v: None if v >= 1
                       else f"expected 1 or more, got {v}")
    window = t.get("fault_window", (int, float), 60.0, check=positive)
    budget_ms = t.get("budget_ms", (int, float), 50, check=positive)
    t.done()
    ports = {}
    for name, value in ports_data.items():
        key = f"{where}.ports.{name}"
        if name not in classes:
            raise ConfigError(path, key, f"no helper named {name!r}; helpers: {', '.join(sorted(classes))}")
        if not isinstance(value, list):
            raise ConfigError(path, key, f"expected an array of ports, got {_type(value)}")
        for i, port in enumerate(value):
            if type(port) is not int or not 1 <= port <= 65535:
                raise ConfigError(path, f"{key}[{i}]", f"expected a port number (1 to 65535), got {port!r}")
        ports[name] = tuple(value)
    return HelperSettings(auto, ports, on_fault, max_faults, float(window), budget_ms / 1000.0)


def _rules(path: Path, key: str, value: str | None) -> RulesConfig | None:
    """rules = "FILE": iptables-save text, relative to the TOML file; parsed here, now."""
    if value is None:
        return None
    if not value:
        raise ConfigError(path, key, "expected a file name, got an empty string")
    from tunrouter.rules import restore
    from tunrouter.rules import RuleSyntaxError

    file = (path.parent / value) if not Path(value).is_absolute() else Path(value)
    try:
        text = file.read_text()
    except OSError as e:
        raise ConfigError(path, key, f"{file}: cannot read: {e.strerror}")
    except UnicodeDecodeError:
        raise ConfigError(path, key, f"{file}: not text (UTF-8)")
    try:
        restore(text)
    except RuleSyntaxError as e:
        raise ConfigError(path, key, f"{file}: {e}")
    return RulesConfig(file, text)


def _log(path: Path, where: str, data: dict) -> LogConfig:
    t = _Table(path, where, data)
    file = t.get("file", str, "stderr",
                 check=lambda v: None if v else 'expected a path, "stderr" or "syslog"')
    fmt = t.get("format", str, "kernel", check=lambda v: None if v in ("kernel", "json")
                else f'expected "kernel" or "json", got {v!r}')
    t.done()
    if file not in ("stderr", "syslog") and not Path(file).is_absolute():
        file = str(path.parent / file)
    return LogConfig(file, fmt)


def _conntrack(path: Path, where: str, data: dict) -> dict[str, int]:
    """[conntrack]: the kernel's net.netfilter.nf_conntrack_* sysctls without the prefix."""
    from tunrouter.conntrack.settings import SYSCTLS, Settings

    out = {}
    for key, value in data.items():
        name = "nf_conntrack_" + key
        if name not in SYSCTLS:
            known = ", ".join(sorted(n.removeprefix("nf_conntrack_") for n in SYSCTLS))
            raise ConfigError(path, f"{where}.{key}", f"unknown conntrack setting; known: {known}")
        if type(value) is not int:
            raise ConfigError(path, f"{where}.{key}", f"expected an integer, got {_type(value)}")
        try:
            Settings().set(name, value)
        except ValueError as e:
            raise ConfigError(path, f"{where}.{key}", str(e))
        out[name] = value
    return out


def _ipfrag(path: Path, where: str, data: dict) -> dict[str, int]:
    """[ipfrag]: net.ipv4.ipfrag_{time,high_thresh,low_thresh,max_dist}."""
    t = _Table(path, where, data)
    positive = lambda v: None if v > 0 else f"expected a positive number, got {v}"  # noqa: E731
    out = {"timeout": t.get("time", int, 30, check=positive),
           "high_thresh": t.get("high_thresh", int, 4 << 20, check=positive),
           "low_thresh": t.get("low_thresh", int, 3 << 20, check=positive),
           "max_dist": t.get("max_dist", int, 64, check=lambda v: None if v >= 0 else f"expected 0 or more, got {v}")}
    t.done()
    if out["low_thresh"] > out["high_thresh"]:
        raise ConfigError(path, f"{where}.low_thresh", "must not exceed high_thresh")
    return out


def _interface(path: Path, where: str, data, router: str, hosts: dict[str, HostConfig] | None) -> InterfaceConfig:
    t = _Table(path, where, data)
    name = t.get("name", str, check=_ifname_problem)
    device = t.get("device", str, name, check=_ifname_problem)
    kind_text = t.get("kind", str, "tun", check=lambda v: None if v in ("tun", "tap")
                      else f'expected "tun" or "tap", got {v!r}')
    kind = Kind(kind_text)
    host = None
    if hosts is not None:
        host = t.get("host", str)
        if host not in hosts:
            raise ConfigError(path, t.key("host"), f"no host {host!r} in this lab; hosts: {', '.join(sorted(hosts)) or 'none'}")
        netns = hosts[host].netns
    else:
        netns = t.get("netns", str, check=_name_problem)
    net = _cidr(path, t.key("address"), t.get("address", str))
    if net.prefixlen == 32:
        raise ConfigError(path, t.key("address"), "a /32 leaves no room for the host; use /31 or shorter")
    host_address = t.get("host_address", str, None)
    if host_address is not None:
        hnet = _cidr(path, t.key("host_address"), host_address)
        if hnet.prefixlen != net.prefixlen or hnet.network != net.network:
            raise ConfigError(path, t.key("host_address"),
                              f"{host_address} is not in the router's network {net.cidr}")
        if hnet.ip == net.ip:
            raise ConfigError(path, t.key("host_address"), "is the router's own address")
    gateway = t.get("gateway", bool, False)
    if gateway and host_address is None:
        raise ConfigError(path, t.key("gateway"), "needs host_address: the host reaches the router from it")
    mtu = t.get("mtu", int, 1500, check=lambda v: None if 68 <= v <= 65535
                else f"expected 68 to 65535 (RFC 791 minimum to the IPv4 maximum), got {v}")
    bridge = t.get("bridge", str, None, check=_ifname_problem)
    if bridge is not None:
        if kind is not Kind.TAP:
            raise ConfigError(path, t.key("bridge"), 'only a kind = "tap" device can join a bridge')
        if host_address is not None:
            raise ConfigError(path, t.key("bridge"), "a bridged device carries no host_address")
    mac_text = t.get("mac", str, None)
    if mac_text is not None:
        try:
            mac = netaddr.EUI(mac_text).packed
        except (ValueError, netaddr.AddrFormatError):
            raise ConfigError(path, t.key("mac"), f"expected a MAC address like 02:00:00:00:00:01, got {mac_text!r}")
        if mac[0] & 1:
            raise ConfigError(path, t.key("mac"), "is a multicast address")
        if kind is not Kind.TAP:
            raise ConfigError(path, t.key("mac"), 'only a kind = "tap" interface has a MAC')
    else:
        mac = _mac_for(router, name) if kind is Kind.TAP else b""
    offload = t.get("offload", bool, True)
    t.done()
    return InterfaceConfig(name, device, kind, netns, net.ip.packed, net.prefixlen, host_address,
                           gateway, mtu, bridge, mac, host, offload)


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}")


def load_lab(path: str | Path) -> LabConfig:
    path = Path(path)
    data = _read(path)
    top = _Table(path, "", data)
    if "lab" not in data:
        raise ConfigError(path, "lab", "missing; a lab file starts with a [lab] table with a name")
    lab = _Table(path, "lab", top.get("lab", dict))
    name = lab.get("name", str, check=_name_problem)
    lab.done()
    hosts = {}
    for hname, hdata in top.get("hosts", dict, {}).items():
        h = _Table(path, f"hosts.{hname}", hdata)
        if _name_problem(hname):
            raise ConfigError(path, f"hosts.{hname}", _name_problem(hname))
        netns = h.get("netns", str, f"{name}-{hname}", check=_name_problem)
        run = h.get("run", list, [])
        for i, cmd in enumerate(run):
            if not isinstance(cmd, str):
                raise ConfigError(path, f"hosts.{hname}.run[{i}]", f"expected a string, got {_type(cmd)}")
        bridge = h.get("bridge", bool, False)
        segment = h.get("segment", str, None)
        address = h.get("address", str, None)
        gateway = h.get("gateway", str, None)
        if segment is None:
            for key, value in (("address", address), ("gateway", gateway)):
                if value is not None:
                    raise ConfigError(path, f"hosts.{hname}.{key}",
                                      "goes with segment = HOST (the host whose bridge this one joins)")
        else:
            if len(hname) > IFNAMSIZ:
                raise ConfigError(path, f"hosts.{hname}.segment", f"a host on a segment has a name of "
                                  f"at most {IFNAMSIZ} characters: its port on the bridge is named after it")
            if address is None:
                raise ConfigError(path, f"hosts.{hname}.address",
                                  "a host on a segment needs its address, like \"10.1.0.10/24\"")
            net = _cidr(path, f"hosts.{hname}.address", address)
            if gateway is not None:
                gateway = _addr(path, f"hosts.{hname}.gateway", gateway)
                if netaddr.IPAddress(int.from_bytes(gateway, "big")) not in net:
                    raise ConfigError(path, f"hosts.{hname}.gateway",
                                      f"{netaddr.IPAddress(int.from_bytes(gateway, 'big'))} "
                                      f"is not in {net.cidr}")
        h.done()
        hosts[hname] = HostConfig(hname, netns, run, bridge, segment, address, gateway)
    if not hosts:
        raise ConfigError(path, "hosts", "a lab needs at least one [hosts.NAME] table")
    routers = {}
    for rname, rdata in top.get("routers", dict, {}).items():
        if _name_problem(rname):
            raise ConfigError(path, f"routers.{rname}", _name_problem(rname))
        routers[rname] = _router(path, rname, rdata, name, hosts)
    top.done()
    for h in hosts.values():
        if h.segment is not None and (h.segment not in hosts or not hosts[h.segment].bridge):
            raise ConfigError(path, f"hosts.{h.name}.segment",
                              f"{h.segment!r} is not a host with bridge = true")
    for r in routers.values():
        for i, iface in enumerate(r.interfaces):
            if iface.bridge is not None and not hosts[iface.host].bridge:
                raise ConfigError(path, f"routers.{r.name}.interfaces[{i}].bridge",
                                  f"host {iface.host!r} has no bridge; set bridge = true on [hosts.{iface.host}]")
    return LabConfig(name, path, hosts, routers)


def load_router(path: str | Path, name: str | None = None) -> RouterConfig:
    """A router from a router file, or router `name` from a lab file."""
    path = Path(path)
    data = _read(path)
    if "lab" in data:
        lab = load_lab(path)
        if name is None:
            if len(lab.routers) != 1:
                raise ConfigError(path, "routers", f"the lab has routers {', '.join(sorted(lab.routers))}; name one with --router")
            name = next(iter(lab.routers))
        if name not in lab.routers:
            raise ConfigError(path, f"routers.{name}", "no such router in this lab")
        return lab.routers[name]
    top = _Table(path, "", data)
    routers = top.get("routers", dict)
    top.done()
    if len(routers) != 1:
        raise ConfigError(path, "routers", f"a router file holds exactly one [routers.NAME] table, found {len(routers)}")
    rname, rdata = next(iter(routers.items()))
    if name is not None and name != rname:
        raise ConfigError(path, f"routers.{name}", f"not in this file (it holds routers.{rname})")
    if _name_problem(rname):
        raise ConfigError(path, f"routers.{rname}", _name_problem(rname))
    return _router(path, rname, rdata, None, None)


def build_router(cfg: RouterConfig):
    """The core Router a RouterConfig describes (pure: no devices are touched)."""
    from tunrouter.core.port import PortSpec
    from tunrouter.core.router import Router, StaticRoute

    ports = [PortSpec(i, f.name, f.kind, f.address, f.prefixlen, f.mtu, f.mac, f.offload)
             for i, f in enumerate(cfg.interfaces)]
    index = {f.name: i for i, f in enumerate(cfg.interfaces)}
    from tunrouter.conntrack.settings import Settings

    key = f"routers.{cfg.name}.helpers"
    try:
        helpers = {name: cls() for name, cls in helper_classes(cfg.path, key).items()}
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a third-party class that cannot even be made
        raise ConfigError(cfg.path, key, f"cannot create a helper: {type(e).__name__}: {e}")
    router = Router(ports, conntrack=Settings(**cfg.conntrack), ipfrag=cfg.ipfrag or None,
                    helpers=helpers, helper_settings=cfg.helpers)
    if cfg.rules is not None:
        from tunrouter.core.hooks import engine_for
        from tunrouter.rules import RuleSyntaxError

        try:
            router.set_rules(engine_for(cfg.rules.text))
        except RuleSyntaxError as e:          # checked at load; only if the file changed
            raise ConfigError(cfg.path, f"routers.{cfg.name}.rules", f"{cfg.rules.path}: {e}")
    for i, r in enumerate(cfg.routes):
        try:
            router.add_route(StaticRoute(r.prefix, r.prefixlen, r.via,
                                         index[r.port] if r.port else None))
        except ValueError as e:
            raise ConfigError(cfg.path, f"routers.{cfg.name}.routes[{i}]", str(e))
    return router
