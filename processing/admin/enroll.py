"""`wellsense participant enroll`: a new pseudonym, gateway credentials, ACL, config bundle.

    wellsense participant enroll --config /etc/wellsense/admin.toml [--gateway gw-5d2e81]
                     [--sensor-address C0:FF:EE:00:00:01 | --sensor-name 'Polar H10 *']

Prints the pseudonym and where the gateway bundle is. The bundle folder holds
``collector.toml``, ``ca.crt`` and ``mqtt-password`` (0600): copy it to the
gateway and run ``deploy/gateway/install.sh --bundle DIR`` there.

No name, contact detail or other identity is asked for or stored: the key
between pseudonym and person stays with the study team, outside WellSense.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from processing.admin import broker
from processing.admin.registry import Registry
from processing.admin.settings import AdminConfig
from wellsense_cli.conventions import exit_code_for

#: Where the installer puts a bundle's files on the gateway.
GATEWAY_ETC = "/etc/wellsense"
# Any heart-rate strap in range: fine in one home; pin an address where several are.
DEFAULT_SENSOR = 'service_uuid = "0000180d-0000-1000-8000-00805f9b34fb"'
KEY_REMINDER = (
    "Record the link between this pseudonym and the person in the study team's own key "
    "file, kept outside WellSense. WellSense never stores names or contact details."
)


@dataclass(frozen=True, slots=True)
class Enrolment:
    participant: str
    gateway: str
    bundle: Path
    new_gateway: bool


def collector_toml(
    config: AdminConfig, gateway: str, registry: Registry, participants: list[str]
) -> str:
    """The gateway's collector.toml (see deploy/gateway/collector.sample.toml).

    Each sensor's key and device id come from the registry, fixed at its
    enrolment: enrolling or withdrawing someone else never renumbers them.
    """
    entries = [(p, registry.participants[p]) for p in participants]
    sensors = "".join(
        f'\n[[sensor]]\nkey = "{e.sensor_key}"\ndevice = "{e.device}"\n'
        f'participant = "{p}"     # a pseudonym, never a name\n'
        f"{e.sensor or DEFAULT_SENSOR}\n"
        for p, e in entries
    )
    return (
        f"# WellSense gateway {gateway}, study {config.study.id}: "
        "written by 'wellsense participant enroll'.\n"
        "# Options are explained in deploy/gateway/collector.sample.toml.\n\n"
        f'[gateway]\nstudy = "{config.study.id}"\nid = "{gateway}"\n'
        'data_dir = "/var/lib/wellsense"\n\n'
        f'[mqtt]\nurl = "{config.broker.public_url}"\nusername = "{gateway}"\n'
        f'password_file = "{GATEWAY_ETC}/mqtt-password"\nca_file = "{GATEWAY_ETC}/ca.crt"\n'
        f"{sensors}"
    )


def enroll(
    config: AdminConfig, *, gateway: str | None = None, sensor_line: str | None = None
) -> Enrolment:
    """Create the pseudonym, credentials, ACL block and bundle; save the registry."""
    registry = Registry(config.registry, config.study.id)
    new_gateway = gateway is None
    if gateway is None:
        gateway = registry.new_gateway_id()
    elif gateway not in registry.gateways():
        raise ValueError(f"unknown gateway {gateway!r}; leave out --gateway to create one")
    participant = registry.new_pseudonym()
    bundle = config.bundles_dir / gateway
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    password_file = bundle / "mqtt-password"
    if new_gateway or not password_file.exists():
        password = secrets.token_urlsafe(24)
        broker.set_password(config.broker.password_file, gateway, password)
        broker.write_private(password_file, password + "\n", mode=0o600)
    registry.add(participant, gateway, sensor_line or "")
    active = registry.of_gateway(gateway, "active")
    broker.set_gateway_acl(config.broker.acl_file, config.study.id, gateway, active)
    broker.write_private(
        bundle / "collector.toml", collector_toml(config, gateway, registry, active), mode=0o640
    )
    shutil.copyfile(config.broker.ca_file, bundle / "ca.crt")
    registry.save()
    return Enrolment(participant, gateway, bundle, new_gateway)


def reload_broker(command: str) -> str | None:
    """Make Mosquitto re-read passwords and ACLs; an error message, or None."""
    try:
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"could not run {command!r}: {exc.strerror}"
    return None if result.returncode == 0 else f"{command!r} failed: {result.stderr.strip()}"


def main(argv: list[str], prog: str = "wellsense participant enroll") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Enrol a participant: a random pseudonym, gateway credentials, broker "
        "ACL entries and a gateway config bundle. No names are asked for or stored.",
        epilog=KEY_REMINDER,
    )
    parser.add_argument("--config", type=Path, required=True, help="admin.toml")
    parser.add_argument("--gateway", help="add the participant to this existing gateway")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sensor-address", help="the strap's Bluetooth address")
    which.add_argument("--sensor-name", help="shell pattern of the strap's name, e.g. 'Polar *'")
    parser.add_argument(
        "--reload-command",
        default="systemctl reload mosquitto",
        help="how to make the broker re-read passwords and ACLs",
    )
    parser.add_argument(
        "--no-reload", action="store_true", help="do not reload the broker (reload it yourself)"
    )
    args = parser.parse_args(argv)
    from collector.tomlconfig import ConfigError
    from processing.admin import settings

    sensor_line = None
    if args.sensor_address:
        sensor_line = f'address = "{args.sensor_address.upper()}"'
    elif args.sensor_name:
        sensor_line = f'name_pattern = "{args.sensor_name}"'
    try:
        config = settings.load(args.config)
        done = enroll(config, gateway=args.gateway, sensor_line=sensor_line)
    except (ConfigError, broker.BrokerAdminError, ValueError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(f"participant pseudonym: {done.participant}")
    print(f"gateway:               {done.gateway}{' (new)' if done.new_gateway else ''}")
    print(
        f"gateway bundle:        {done.bundle}  (copy it to the gateway, then run "
        f"'sudo deploy/gateway/install.sh --bundle DIR')"
    )
    print(KEY_REMINDER)
    if not args.no_reload:
        problem = reload_broker(args.reload_command)
        if problem:
            print(f"{prog}: broker not reloaded: {problem}", file=sys.stderr)
            return 1
    return 0
