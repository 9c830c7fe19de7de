"""The broker's access control: config fragment, password file and ACL.

``wellsense broker init`` renders the shipped templates in
``deploy/server/mosquitto/`` (TLS-only listener, no anonymous access, a
password file, an ACL file) and creates the processing and admin users.
``wellsense participant enroll`` then adds one password entry and one ACL block per
gateway through :func:`set_password` and :func:`set_gateway_acl`.

Passwords are handed to ``mosquitto_passwd`` on its standard input, never on
its command line, where any local user could read them in ``ps``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from string import Template

import wellsense_resources
from collector import wire
from processing.admin.settings import AdminConfig, BrokerSettings
from wellsense_cli.conventions import exit_code_for

_BEGIN = "# BEGIN gateway "
_END = "# END gateway "


class BrokerAdminError(RuntimeError):
    """A broker file could not be changed; the message says why (never a password)."""


def deploy_dir() -> Path:
    """The shipped ``deploy/`` folder (in the wheel or the checkout; $WELLSENSE_DEPLOY_DIR wins)."""
    try:
        return wellsense_resources.deploy_dir()
    except wellsense_resources.ResourceError as exc:
        raise BrokerAdminError(str(exc)) from exc


def render_conf(broker: BrokerSettings, template_dir: Path | None = None) -> str:
    """The Mosquitto config fragment for ``/etc/mosquitto/conf.d/wellsense.conf``."""
    directory = template_dir or deploy_dir() / "server" / "mosquitto"
    text = (directory / "wellsense.conf.in").read_text()
    return Template(text).substitute(
        password_file=broker.password_file,
        acl_file=broker.acl_file,
        port=broker.port,
        bind_address=broker.bind_address,
        ca_file=broker.ca_file,
        cert_file=broker.cert_file,
        key_file=broker.key_file,
    )


def render_acl_header(study: str, broker: BrokerSettings, template_dir: Path | None = None) -> str:
    directory = template_dir or deploy_dir() / "server" / "mosquitto"
    text = (directory / "acl.in").read_text()
    study = wire.check_id(study, "study")
    # The same rights for every processing account (one per worker, one for alerts).
    blocks = "\n".join(
        f"user {_username(user)}\n"
        f"topic read wellsense/v1/{study}/#\n"
        f"topic write wellsense/v1/{study}/_gateways/+/stored\n"
        f"topic write wellsense/v1/{study}/_deadletter\n"
        f"topic write wellsense/v1/{study}/_alerts\n"
        f"topic write wellsense/v1/{study}/_alerts/#\n"
        for user in broker.processing_accounts().values()
    )
    return Template(text).substitute(
        study=study,
        processing_blocks=blocks.rstrip("\n"),
        admin_user=_username(broker.admin_user),
    )


def gateway_acl_block(study: str, gateway: str, participants: Iterable[str]) -> str:
    """One gateway's ACL: its participants' streams, its status topics, its command topic
    and its storage confirmations (``stored``, read only: written by processing).

    The streams are every participant stream of the wire contract, ``features``
    (data minimisation mode) included, so a gateway can be switched to the mode
    without touching the broker. ``selfreport`` is included too: self-reports
    are published under the participant's gateway account (a study app on the
    gateway, or one that relays through it), so whoever may speak for a
    participant's sensors is also the only one who may speak for their answers,
    and enrolment, erasure and ACL checks need no second kind of account.
    """
    lines = [f"{_BEGIN}{gateway}", f"user {wire.check_id(gateway, 'gateway')}"]
    lines.append(f"topic read {wire.gateway_topic(study, gateway, 'cmd')}")
    # Processing's storage confirmations for this gateway's outbox (read only).
    lines.append(f"topic read {wire.gateway_topic(study, gateway, 'stored')}")
    lines += [
        f"topic write {wire.gateway_topic(study, gateway, leaf)}" for leaf in ("state", "health")
    ]
    for participant in sorted(set(participants)):
        lines += [
            f"topic write {wire.participant_topic(study, participant, stream)}"
            for stream in sorted(wire.PARTICIPANT_STREAMS)
        ]
    lines.append(f"{_END}{gateway}")
    return "\n".join(lines) + "\n"


def set_gateway_acl(acl_file: Path, study: str, gateway: str, participants: Iterable[str]) -> None:
    """Replace (or add) ``gateway``'s block in ``acl_file``, atomically."""
    text = acl_file.read_text() if acl_file.exists() else ""
    pattern = re.compile(
        rf"^{re.escape(_BEGIN + gateway)}\n.*?^{re.escape(_END + gateway)}\n", re.M | re.S
    )
    block = gateway_acl_block(study, gateway, participants)
    text, n = pattern.subn(lambda _m: block, text)
    if n == 0:
        text = text + ("" if text.endswith("\n\n") or not text else "\n") + block
    write_private(acl_file, text, mode=0o640)


def acl_participants(acl_file: Path, gateway: str) -> set[str]:
    """The participants whose streams ``gateway`` may publish, per the ACL file."""
    out: set[str] = set()
    inside = False
    for line in acl_file.read_text().splitlines():
        if line == _BEGIN + gateway:
            inside = True
        elif line == _END + gateway:
            inside = False
        elif inside and line.startswith("topic write ") and "/_gateways/" not in line:
            out.add(line.split("/")[3])
    return out


def set_password(password_file: Path, username: str, password: str) -> None:
    """Add or replace ``username`` in a Mosquitto password file (PBKDF2-SHA512)."""
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        raise BrokerAdminError("mosquitto_passwd is missing (Debian package 'mosquitto')")
    if not password_file.exists():
        write_private(password_file, "", mode=0o640)
    result = subprocess.run(
        [exe, str(password_file), _username(username)],
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        # mosquitto_passwd's own message names the file, never the password.
        raise BrokerAdminError(f"mosquitto_passwd failed for {username}: {result.stderr.strip()}")


def remove_password(password_file: Path, username: str) -> None:
    exe = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
    subprocess.run([exe, "-D", str(password_file), _username(username)], capture_output=True)


def write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` atomically with ``mode``, keeping an existing file's owner and group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if old is not None and os.geteuid() == 0:
            os.fchown(fd, old.st_uid, old.st_gid)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _username(name: str) -> str:
    # Usernames end up in ACL lines and argv: no spaces, no separators.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise BrokerAdminError(f"{name[:70]!r} is not a usable broker username")
    return name


# --------------------------------------------------------------------------- CLI


def init(config: AdminConfig, conf_dir: Path, secrets_dir: Path, *, force: bool = False) -> str:
    """Write the config fragment, the ACL header and the service users.

    The users: one per processing worker (``<processing_user>-<worker>``), one
    for the alert publisher (``<processing_user>-rules``) and the admin user.
    The broker binds each client id to its account, so they cannot share.
    """
    b = config.broker
    fragment = conf_dir / "wellsense.conf"
    write_private(fragment, render_conf(b), mode=0o644)
    if b.acl_file.exists() and not force:
        # Re-run (a worker added, an upgrade): a fresh header, the gateways' blocks kept.
        text = b.acl_file.read_text()
        start = text.find(f"{_BEGIN}")
        blocks = text[start:] if start >= 0 else ""
        header = render_acl_header(config.study.id, b)
        write_private(b.acl_file, header + ("\n" + blocks if blocks else ""), mode=0o640)
        kept = blocks.count(_BEGIN)
        report = [f"updated the ACL header of {b.acl_file}, kept {kept} gateway blocks"]
    else:
        write_private(b.acl_file, render_acl_header(config.study.id, b), mode=0o640)
        report = [f"wrote ACL {b.acl_file}"]
    accounts = [(user, f"processing-{w}") for w, user in b.processing_accounts().items()]
    for user, file_name in (*accounts, (b.admin_user, "admin")):
        secret_file = secrets_dir / f"{file_name}-mqtt-password"
        if secret_file.exists() and not force:
            report.append(f"kept {user}'s password in {secret_file}")
            password = secret_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(24)
            write_private(secret_file, password + "\n", mode=0o600)
            report.append(f"{user}'s password is in {secret_file} (mode 0600)")
        set_password(b.password_file, user, password)
    report.insert(0, f"wrote {fragment}")
    return "\n".join(report)


def main(argv: list[str], prog: str = "wellsense broker") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Set up the study's Mosquitto: TLS only, passwords, ACLs."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("init", help="write the config fragment, ACL and service users")
    p.add_argument("--config", type=Path, required=True, help="admin.toml")
    p.add_argument(
        "--conf-dir",
        type=Path,
        default=Path("/etc/mosquitto/conf.d"),
        help="Mosquitto's config fragment directory (default: %(default)s)",
    )
    p.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path("/etc/wellsense"),
        help="where the service passwords are written, mode 0600 (default: %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="replace the ACL and service passwords")
    args = parser.parse_args(argv)
    from collector.tomlconfig import ConfigError
    from processing.admin import settings

    try:
        config = settings.load(args.config)
        print(init(config, args.conf_dir, args.secrets_dir, force=args.force))
    except (ConfigError, BrokerAdminError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print("Now run: systemctl reload mosquitto   (or restart it the first time)")
    return 0
