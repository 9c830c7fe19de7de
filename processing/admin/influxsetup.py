"""Set up InfluxDB 2.x for a study: org, buckets, downsampling task, least-privilege tokens.

    wellsense influx setup --config /etc/wellsense/admin.toml \\
        --operator-token-file /root/influx-operator-token --secrets-dir /etc/wellsense

Idempotent: a second run changes retention if the config changed, replaces
the task's Flux, and keeps every token whose file still exists (a service
holding it keeps working). ``--rotate-tokens`` replaces them all (the old ones
stop working at once: restart the guard and processing). The processing token
may live where the guard reads it (``--processing-token-file``), so a re-run
finds and keeps it there.

Tokens (each written to ``<secrets-dir>/influx-<role>-token``, mode 0600):

``processing``
    read and write on the raw bucket only, held by the write guard
    (:mod:`processing.admin.influxguard`), never by processing itself:
    InfluxDB 2.x lets any token that may write a bucket delete its points
    and even the bucket. Processing gets ``influx-guard-client-token``
    instead, which works only through the guard (writes, queries, and the
    deletion of a single feature point), so processing cannot delete data.
``researcher``
    read on both buckets; cannot write, delete or change anything.
``erasure``
    read and write on both buckets, for ``wellsense participant erase`` (its
    ``[influx] token_file`` in admin.toml). Keep it with the study team.

The operator token (from onboarding) is used only by this command.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processing.admin.broker import write_private
from processing.admin.influxapi import InfluxApi, InfluxApiError
from processing.admin.settings import AdminConfig, InfluxSettings
from wellsense_cli.conventions import exit_code_for

DAY_S = 86_400
TASK_PREFIX = "wellsense-downsample"
#: How far back each task run re-aggregates: gateways upload late after an outage.
DOWNSAMPLE_LOOKBACK = "2d"


@dataclass(frozen=True, slots=True)
class SetupResult:
    org_id: str
    bucket_ids: dict[str, str]
    token_files: dict[str, Path]
    task_id: str
    created: tuple[str, ...] = ()  # roles whose token is new this run

    def summary(self) -> str:
        lines = [f"org {self.org_id}"]
        lines += [f"bucket {name}: {bid}" for name, bid in self.bucket_ids.items()]
        lines.append(f"downsampling task {self.task_id}")
        lines += [
            f"{role} token: {path} ({'new' if role in self.created else 'kept'})"
            for role, path in self.token_files.items()
        ]
        return "\n".join(lines)


def downsample_flux(settings: InfluxSettings) -> str:
    """Hourly (``downsample_every``) summaries that keep the participant tag.

    hr: mean, min, max of ``hr_bpm``; activity: sum of ``steps`` and ``counts``.
    Writing the same window again overwrites it, so re-aggregating the
    lookback on every run picks up late uploads without double counting.
    """
    every = settings.downsample_every
    src, dst, org = settings.bucket, settings.downsampled_bucket, settings.org

    def part(measurement: str, field: str, fn: str, out: str) -> str:
        return (
            f'from(bucket: "{src}")\n'
            f"  |> range(start: -{DOWNSAMPLE_LOOKBACK})\n"
            f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}")\n'
            f'  |> drop(columns: ["device"])\n'
            f"  |> aggregateWindow(every: {every}, fn: {fn}, createEmpty: false)\n"
            f'  |> set(key: "_measurement", value: "{measurement}_{every}")\n'
            f'  |> set(key: "_field", value: "{out}")\n'
            f'  |> to(bucket: "{dst}", org: "{org}")\n'
        )

    return f'option task = {{name: "{TASK_PREFIX}-{src}", every: {every}}}\n\n' + "\n".join(
        [
            part("hr", "hr_bpm", "mean", "hr_bpm_mean"),
            part("hr", "hr_bpm", "min", "hr_bpm_min"),
            part("hr", "hr_bpm", "max", "hr_bpm_max"),
            part("activity", "steps", "sum", "steps_sum"),
            part("activity", "counts", "sum", "counts_sum"),
        ]
    )


def _find(api: InfluxApi, path: str, key: str, **params: str) -> list[dict[str, Any]]:
    """A filtered listing; InfluxDB answers 404 rather than an empty list for some."""
    try:
        found: list[dict[str, Any]] = api.get(path, **params).get(key, [])
    except InfluxApiError as exc:
        if exc.status != 404:
            raise
        return []
    return found


def _org(api: InfluxApi, name: str) -> str:
    orgs = _find(api, "/api/v2/orgs", "orgs", org=name)
    if orgs:
        return str(orgs[0]["id"])
    return str(api.post("/api/v2/orgs", {"name": name})["id"])


def _bucket(api: InfluxApi, org_id: str, name: str, retention_days: int) -> str:
    rules = [{"type": "expire", "everySeconds": retention_days * DAY_S}] if retention_days else []
    found = _find(api, "/api/v2/buckets", "buckets", orgID=org_id, name=name)
    if found:
        bucket = found[0]
        if bucket.get("retentionRules", []) != rules:
            api.patch(f"/api/v2/buckets/{bucket['id']}", {"retentionRules": rules})
        return str(bucket["id"])
    body = {"orgID": org_id, "name": name, "retentionRules": rules}
    return str(api.post("/api/v2/buckets", body)["id"])


def _task(api: InfluxApi, org_id: str, settings: InfluxSettings) -> str:
    flux = downsample_flux(settings)
    name = f"{TASK_PREFIX}-{settings.bucket}"
    tasks = _find(api, "/api/v2/tasks", "tasks", orgID=org_id, name=name)
    if tasks:
        task_id = str(tasks[0]["id"])
        api.patch(f"/api/v2/tasks/{task_id}", {"flux": flux, "status": "active"})
        return task_id
    return str(api.post("/api/v2/tasks", {"orgID": org_id, "flux": flux})["id"])


def _perm(action: str, org_id: str, bucket_id: str) -> dict[str, Any]:
    resource = {"type": "buckets", "id": bucket_id, "orgID": org_id}
    return {"action": action, "resource": resource}


def role_permissions(org_id: str, raw_id: str, down_id: str) -> dict[str, list[dict[str, Any]]]:
    """What each token may do: bucket-scoped read/write, nothing org-wide."""
    return {
        "processing": [_perm("read", org_id, raw_id), _perm("write", org_id, raw_id)],
        "researcher": [_perm("read", org_id, raw_id), _perm("read", org_id, down_id)],
        "erasure": [
            _perm(action, org_id, bucket)
            for bucket in (raw_id, down_id)
            for action in ("read", "write")
        ],
    }


def _token(
    api: InfluxApi,
    org_id: str,
    role: str,
    permissions: list[dict[str, Any]],
    path: Path,
    study: str,
    *,
    rotate: bool = False,
) -> bool:
    """Make sure ``path`` holds a live token of ``role``; True if a new one was made."""
    description = f"wellsense {study} {role}"
    existing = [
        a
        for a in api.get("/api/v2/authorizations", orgID=org_id).get("authorizations", [])
        if a.get("description") == description
    ]
    if existing and path.exists() and not rotate:
        held = path.read_text().strip()
        if any(a.get("token") == held for a in existing) or not any(
            a.get("token") for a in existing
        ):
            return False  # still valid (InfluxDB may not show token values: trust the file)
    for auth in existing:  # replaced, or the file is gone: nobody may hold the old one
        api.delete_resource(f"/api/v2/authorizations/{auth['id']}")
    created = api.post(
        "/api/v2/authorizations",
        {"orgID": org_id, "description": description, "permissions": permissions},
    )
    write_private(path, created["token"] + "\n", mode=0o600)
    return True


def setup(
    config: AdminConfig,
    operator_token: str,
    secrets_dir: Path,
    *,
    processing_token_file: Path | None = None,
    rotate: bool = False,
) -> SetupResult:
    """Create or update everything; return ids and where the tokens were written.

    ``processing_token_file``: where the processing token is kept (the
    guard's copy); default ``<secrets_dir>/influx-processing-token``.
    ``rotate``: replace every token, even those whose files exist.
    """
    s = config.influx
    api = InfluxApi(s.url, operator_token)
    org_id = _org(api, s.org)
    raw_id = _bucket(api, org_id, s.bucket, s.retention_days)
    down_id = _bucket(api, org_id, s.downsampled_bucket, s.downsampled_retention_days)
    task_id = _task(api, org_id, s)
    files = {}
    created = []
    for role, perms in role_permissions(org_id, raw_id, down_id).items():
        files[role] = secrets_dir / f"influx-{role}-token"
        if role == "processing" and processing_token_file is not None:
            files[role] = processing_token_file
        if _token(api, org_id, role, perms, files[role], config.study.id, rotate=rotate):
            created.append(role)
    files["guard-client"] = secrets_dir / "influx-guard-client-token"
    if rotate or not files["guard-client"].exists():
        write_private(files["guard-client"], secrets.token_urlsafe(32) + "\n", mode=0o600)
        created.append("guard-client")
    return SetupResult(
        org_id, {s.bucket: raw_id, s.downsampled_bucket: down_id}, files, task_id, tuple(created)
    )


def main(argv: list[str], prog: str = "wellsense influx setup") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Create the study's InfluxDB org, buckets (with retention), the "
        "downsampling task and least-privilege tokens (processing, researcher, erasure).",
    )
    parser.add_argument("--config", type=Path, required=True, help="admin.toml")
    parser.add_argument(
        "--operator-token-file",
        type=Path,
        required=True,
        help="file (mode 0600) holding the operator token from InfluxDB's onboarding",
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path("/etc/wellsense"),
        help="where the tokens are written, mode 0600 (default: %(default)s)",
    )
    parser.add_argument(
        "--processing-token-file",
        type=Path,
        help="where the guard keeps the processing token (default: in --secrets-dir)",
    )
    parser.add_argument(
        "--rotate-tokens",
        action="store_true",
        help="replace every token (default: keep those whose files exist)",
    )
    args = parser.parse_args(argv)
    from collector.tomlconfig import ConfigError
    from processing.admin import settings

    try:
        config = settings.load(args.config)
        if args.operator_token_file.stat().st_mode & 0o077:
            raise ConfigError(f"{args.operator_token_file} is readable by others; chmod 600 it")
        token = args.operator_token_file.read_text().strip()
        result = setup(
            config,
            token,
            args.secrets_dir,
            processing_token_file=args.processing_token_file,
            rotate=args.rotate_tokens,
        )
    except (ConfigError, InfluxApiError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(result.summary())
    return 0
