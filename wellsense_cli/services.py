"""`wellsense services up|down|restart|env|status`: local Mosquitto + InfluxDB 2.x.

`up` starts what is not running under a scratch directory (free loopback
ports the first time; afterwards the recorded ports, password and token) and
prints their settings as shell lines (``eval "$(wellsense services env)"``);
`restart mosquitto|influxd` restarts one of them with the same settings;
`down` stops exactly the processes `up` started, by pid, and keeps the data
and settings for the next `up` (`--purge` deletes them).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from wellsense_cli import localservices as ls

DEFAULT_DIR = Path(".services")


def _print_env(env: dict[str, str]) -> None:
    for name in ls.ENV_NAMES:
        print(f"export {name}={shlex.quote(env[name])}")


def stop_hint(directory: Path) -> str:
    """The command that stops the services of ``directory``."""
    if directory == DEFAULT_DIR.resolve():
        return "make services-down"
    return f"wellsense services down --dir {shlex.quote(str(directory))}"


def env_hint(directory: Path) -> str:
    """The command that loads the settings of the services of ``directory``."""
    if directory == DEFAULT_DIR.resolve():
        return 'eval "$(make -s services-env)"'
    return f'eval "$(wellsense services env --dir {shlex.quote(str(directory))})"'


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action",
        choices=("up", "down", "restart", "env", "status"),
        help="up: start what is not running; down: stop them (data and settings kept); "
        "restart SERVICE; env: print the settings as export lines; status",
    )
    parser.add_argument(
        "service",
        nargs="?",
        choices=ls.SERVICES,
        help="for restart: the service to restart (its port, password and token are kept)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="scratch directory for their data and logs (default: .services)",
    )
    parser.add_argument(
        "--purge",
        action="store_true",
        help="with down: also delete the directory's data, logs and settings",
    )
    args = parser.parse_args(argv)
    if (args.action == "restart") != (args.service is not None):
        parser.error("name a service with restart, and only with restart")
    if args.purge and args.action != "down":
        parser.error("--purge goes with down")
    directory: Path = args.dir.resolve()

    if args.action in ("up", "restart"):
        restart = (args.service,) if args.service else ()
        try:
            services, started = ls.ensure_services(directory, restart=restart)
        except ls.ServiceError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 1
        if started:
            pids = ", ".join(f"{n} pid {getattr(services, n).pid}" for n in started)
            print(f"# started under {directory}: {pids}", file=sys.stderr)
        else:
            print(f"# services already running (state in {directory})", file=sys.stderr)
        print(f"# stop with '{stop_hint(directory)}'", file=sys.stderr)
        _print_env(services.env())
        return 0

    state = ls.load_state(directory)
    if args.action == "down":
        stopped = ls.stop_recorded(directory)
        what = ", ".join(stopped) if stopped else "nothing was running"
        print(f"# stopped the services recorded in {directory}: {what}", file=sys.stderr)
        if args.purge and directory.exists():
            shutil.rmtree(directory)
            print(f"# deleted {directory}", file=sys.stderr)
        return 0
    if state is None:
        print(
            f"{prog}: no services recorded in {directory}; run 'wellsense services up "
            f"--dir {shlex.quote(str(directory))}'",
            file=sys.stderr,
        )
        return 1
    if args.action == "env":
        if not all(ls.running(state).values()):
            print(f"# some services in {directory} are stopped: run 'up'", file=sys.stderr)
        _print_env(state["env"])
    else:
        for name, up in ls.running(state).items():
            print(f"{name}: {'running' if up else 'stopped'} (pid {state[name]['pid']})")
    return 0
