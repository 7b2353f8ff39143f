"""`tunrouter` subcommands.  A thin shell: parse arguments, call, format, exit code."""
import argparse
import json
import logging
import os
import sys

from tunrouter import __version__
from tunrouter.cli import capture, conntrack, helpers, iptables, replay, top, trace
from tunrouter.config import RUN_DIR, ConfigError


def _run(args) -> int:
    from tunrouter.config import load_router
    from tunrouter.driver.runner import serve

    serve(load_router(args.file, args.router))
    return 0


def _lab_up(args) -> int:
    from tunrouter import lab

    state = lab.up(args.file)
    print(f"lab {state['name']} is up: namespaces {', '.join(state['namespaces'])}")
    for name, r in state["routers"].items():
        print(f"  router {name}: pid {r['pid']}, control {r['socket']}, log {r['log']}")
    print(f"look around: tunrouter lab exec {state['name']} HOST -- CMD; "
          f"tunrouter stats --lab {state['name']}; take it down: tunrouter lab down {state['name']}")
    return 0


def _lab_down(args) -> int:
    from tunrouter import lab

    lab.down(args.name)
    print(f"lab {args.name} is down")
    return 0


def _lab_status(args) -> int:
    from tunrouter import lab
    from tunrouter.cli import show

    labs = lab.status(args.name)
    print(json.dumps(labs, indent=2) if args.json else show.lab_status(labs))
    return 0


def _lab_exec(args) -> int:
    from tunrouter import lab

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise lab.LabError("no command given: tunrouter lab exec NAME HOST -- CMD...")
    ns = lab.host_netns(args.name, args.host)
    os.execvp("ip", ["ip", "netns", "exec", ns, *cmd])


def _socket(args) -> str:
    """The control socket named by --socket, --lab/--router, or the only one running."""
    if args.socket:
        return args.socket
    if args.lab:
        from tunrouter import lab

        return lab.router_socket(args.lab, args.router)
    socks = sorted(str(p) for p in RUN_DIR.glob("*.sock")) if RUN_DIR.is_dir() else []
    if len(socks) == 1:
        return socks[0]
    if not socks:
        raise ConfigError(RUN_DIR, "", "no router is running here (no control socket); "
                          "start one, or name it with --lab or --socket")
    raise ConfigError(RUN_DIR, "", f"several routers are running ({', '.join(socks)}); "
                      "name one with --lab/--router or --socket")


def _stats(args) -> int:
    from tunrouter.cli import show
    from tunrouter.driver.control import request

    sock = _socket(args)
    s = request(sock, "stats")
    who = request(sock, "ping")
    print(json.dumps(s, indent=2) if args.json else show.stats(f"{who['router']} (pid {who['pid']})", s))
    return 0


def _reload(args) -> int:
    from tunrouter.driver.control import request

    done = request(_socket(args), "reload")
    print(f"reloaded {done['reloaded']} (rules: {done['rules'] or 'none'})")
    return 0


def _add_target(p: argparse.ArgumentParser, short: bool = True) -> None:
    """--lab/--router/--socket; short forms only where they clash with no tool's own options."""
    g = p.add_argument_group("which router")
    g.add_argument(*(["-l"] if short else []), "--lab", help="a lab's router, by lab name")
    g.add_argument(*(["-r"] if short else []), "--router",
                   help="which router of the lab (needed when it has several)")
    g.add_argument(*(["-s"] if short else []), "--socket", help="a router's control socket path")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunrouter", description="A user-space IPv4 router, firewall and NAT for network namespaces.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"tunrouter {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one router in the foreground for existing namespaces")
    run.add_argument("file", help="a router file, or a lab file with --router")
    run.add_argument("--router", help="the router to run when the file holds a lab")
    run.set_defaults(func=_run)

    lab = sub.add_parser("lab", help="build, inspect, use and remove namespace labs")
    labsub = lab.add_subparsers(dest="lab_verb", required=True, metavar="ACTION")
    x = labsub.add_parser("up", help="build the lab described by FILE")
    x.add_argument("file")
    x.set_defaults(func=_lab_up)
    x = labsub.add_parser("down", help="remove everything `lab up` made")
    x.add_argument("name")
    x.set_defaults(func=_lab_down)
    x = labsub.add_parser("status", help="routers, namespaces and commands of the labs that are up")
    x.add_argument("name", nargs="?")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=_lab_status)
    x = labsub.add_parser("exec", help="run a command in a lab host's namespace")
    x.add_argument("name")
    x.add_argument("host")
    x.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    x.set_defaults(func=_lab_exec)

    st = sub.add_parser("stats", help="a running router's counters")
    _add_target(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_stats)

    rl = sub.add_parser("reload", help="re-read a running router's file: rules, conntrack and "
                                       "helper settings, all or nothing (as SIGHUP does)")
    _add_target(rl)
    rl.set_defaults(func=_reload)

    conntrack.add_parsers(sub, _add_target, _socket)
    iptables.add_parsers(sub, _add_target, _socket)
    helpers.add_parsers(sub, _add_target, _socket)
    replay.add_parsers(sub)
    trace.add_parsers(sub, _add_target, _socket)
    capture.add_parsers(sub, _add_target, _socket)
    top.add_parsers(sub, _add_target, _socket)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from tunrouter.driver.control import ControlError
    from tunrouter.driver.devices import DeviceError
    from tunrouter.lab import LabError

    try:
        return args.func(args)
    except (ConfigError, ControlError, DeviceError, LabError) as e:
        print(f"tunrouter: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:                      # `| head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
