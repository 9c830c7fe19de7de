"""``wellsense dashboard``: serve the staff dashboard, or manage its users.

    wellsense dashboard --config FILE                 serve (uvicorn)
    wellsense dashboard --config FILE user add NAME --role staff|researcher|admin [--one-time]
    wellsense dashboard --config FILE user passwd NAME [--one-time]
    wellsense dashboard --config FILE user list
    wellsense dashboard --config FILE user role NAME staff|researcher|admin

(``--config`` may also follow ``user ...``.)

Passwords are read from the terminal (twice) or, for scripts, one line on
stdin with ``--password-stdin``; ``--one-time`` generates one, prints it
once, and makes the user choose their own at first sign-in.
Exit codes: 0 ok, 1 refused (e.g. the user exists), 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wellsense_cli.conventions import EXIT_FAILURE, EXIT_USAGE

if TYPE_CHECKING:
    from processing.dashboard.settings import DashboardConfig



def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The staff dashboard: who needs attention, alerts, participant pages.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file (required)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level written (default info)",
    )
    sub = parser.add_subparsers(dest="command")
    user = sub.add_parser("user", help="add users, set passwords, list users")
    users = user.add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="add a user")
    add.add_argument("name", help="login name")
    add.add_argument(
        "--role", required=True, choices=("staff", "researcher", "admin"), help="what they may do"
    )
    passwd = users.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name", help="login name")
    for p in (add, passwd):
        how = p.add_mutually_exclusive_group()
        how.add_argument(
            "--one-time", action="store_true", help="generate and print a one-time password"
        )
        how.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    role = users.add_parser("role", help="change a user's role")
    role.add_argument("name", help="login name")
    role.add_argument("role", choices=("staff", "researcher", "admin"), help="the new role")
    listing = users.add_parser("list", help="list users and roles")
    for p in (add, passwd, role, listing):
        p.add_argument(
            "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help="TOML file"
        )
    return parser


def main(argv: list[str], prog: str = "wellsense dashboard") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("--config FILE is required")
    from processing.dashboard.settings import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "user":
        return _user(args, config, prog)
    return serve(config, log_level=args.log_level)


def _user(args: argparse.Namespace, config: DashboardConfig, prog: str) -> int:
    from processing.dashboard.accounts import AccountError, Accounts, new_password

    box = Accounts(config.accounts_path)
    try:
        if args.action == "role":
            box.set_role(args.name, args.role)
            box.audit("(command line)", "user role", args.name, args.role)
            return 0
        if args.action == "list":
            for u in box.users():
                note = "\tmust change password" if u.must_change else ""
                print(f"{u.name}\t{u.role}{note}")
            return 0
        if args.one_time:
            password = new_password()
        elif args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("New password: ")
            if getpass.getpass("Again: ") != password:
                print(f"{prog}: the passwords differ", file=sys.stderr)
                return EXIT_FAILURE
        if args.action == "add":
            box.add_user(args.name, args.role, password, must_change=args.one_time)
        else:
            box.set_password(args.name, password, must_change=args.one_time)
        box.audit(
            "(command line)", f"user {args.action}", args.name, getattr(args, "role", "") or ""
        )
        if args.one_time:
            print(f"one-time password for {args.name}: {password}")
        return 0
    except AccountError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        box.close()


def serve(config: DashboardConfig, *, log_level: str = "info") -> int:
    """Serve with uvicorn until SIGINT or SIGTERM."""
    import uvicorn

    from processing.dashboard.app import create_app
    from processing.dashboard.data import Data
    from processing.research.store import Store
    from processing.rules.runner import clock_from_env

    c = config
    store = Store(c.connection)
    app = create_app(c, Data(store, clock_from_env(), c.registry))
    print(f"dashboard: http://{c.host}:{c.port}/", flush=True)
    uvicorn.run(
        app,
        host=c.host,
        port=c.port,
        log_level=log_level,
        proxy_headers=True,  # X-Forwarded-Proto from a local TLS proxy: Secure cookies stay right
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
    )
    store.close()
    return 0
