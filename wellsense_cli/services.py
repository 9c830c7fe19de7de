"""`wellsense services up|down|env`: local Mosquitto + InfluxDB 2.x for the demo.

`up` starts both on free loopback ports under a scratch directory and prints
their settings as shell lines (``eval "$(wellsense services env)"``); `down`
stops exactly the processes `up` started, by pid.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from wellsense_cli import localservices as ls

DEFAULT_DIR = Path(".services")


def _print_env(env: dict[str, str]) -> None:
    for name in ls.ENV_NAMES:
        print(f"export {name}={shlex.quote(env[name])}")


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action",
        choices=("up", "down", "env", "status"),
        help="up: start both; down: stop them; env: print their settings; status: running?",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="scratch directory for their data and logs (default: .services)",
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    state = ls.load_state(directory)

    if args.action == "up":
        if state and all(ls.running(state).values()):
            print(f"# services already running (state in {directory})", file=sys.stderr)
            _print_env(state["env"])
            return 0
        if state:
            _stop(state)
        try:
            print(f"# starting Mosquitto and InfluxDB under {directory} ...", file=sys.stderr)
            services = ls.start_services(directory)
        except ls.ServiceError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 1
        ls.save_state(directory, services)
        print(
            f"# started: mosquitto pid {services.mosquitto.pid}, influxd pid "
            f"{services.influxd.pid}; stop with 'make services-down'",
            file=sys.stderr,
        )
        _print_env(services.env())
        return 0

    if state is None:
        if args.action == "down":
            print(f"# no services recorded in {directory}; nothing to stop", file=sys.stderr)
            return 0
        print(
            f"{prog}: no services recorded in {directory}; run 'make services-up'", file=sys.stderr
        )
        return 1
    if args.action == "env":
        _print_env(state["env"])
    elif args.action == "status":
        for name, up in ls.running(state).items():
            print(f"{name}: {'running' if up else 'stopped'} (pid {state[name]['pid']})")
    else:
        _stop(state)
        (directory / ls.STATE_FILE).unlink(missing_ok=True)
        print(f"# stopped the services recorded in {directory}", file=sys.stderr)
    return 0


def _stop(state: dict[str, object]) -> None:
    for name in ("mosquitto", "influxd"):
        entry = state[name]
        assert isinstance(entry, dict)
        ls.stop_pid(int(entry["pid"]), str(entry["exe"]))
