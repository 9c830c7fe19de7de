"""The study-staff part of ``wellsense demo``: alert delivery and the dashboard.

* :func:`start_inbox` runs a local SMTP server (aiosmtpd) and a local webhook
  receiver in a child process that files what arrives under ``DIR/inbox``
  (``mail-*.eml``, ``webhook-*.json``), and returns the ``[notify]`` TOML
  that sends every rule recipient there: e-mail to the study team, a JSON
  webhook for the others;
* :func:`start_dashboard` adds a one-time admin login and starts
  ``wellsense dashboard`` in its own session, so it keeps running after the
  demo (its pid is in ``DIR/dashboard.pid``).

Run as ``python -m wellsense_cli.demo_staff inbox DIR SMTP_PORT HTTP_PORT``
for the receiver process itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECIPIENTS = ("study-team", "data-manager", "technical-support")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_inbox(directory: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start the receivers; (process, the ``[notify]`` TOML for the processing config)."""
    inbox = directory / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    smtp, http = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wellsense_cli.demo_staff",
            "inbox",
            str(inbox),
            str(smtp),
            str(http),
        ],
        stdout=(directory / "inbox.log").open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    urls = {
        "study-team": f"mailto://127.0.0.1:{smtp}?from=wellsense@example.org"
        "&to=study-team@example.org&mode=insecure",
        "data-manager": f"json://127.0.0.1:{http}/data-manager",
        "technical-support": f"json://127.0.0.1:{http}/technical-support",
    }
    toml = f'[notify]\nstate_dir = "{directory / "notify"}"\nlease_s = 10\nbackoff_s = 2\n'
    for name, url in urls.items():
        path = directory / f"notify-{name}.urls"  # a secret file: 0600
        path.write_text(url + "\n")
        path.chmod(0o600)
        toml += f'[notify.recipients.{name}]\nurls_file = "{path}"\n'
    return proc, toml


def two_workers(processing_conf: Path, notify_toml: str) -> Path:
    """Give the demo's worker a ``[notify]`` table and a twin (a shared subscription).

    Both run the rules; the lease lets one of them at a time evaluate and deliver.
    Returns the second worker's configuration file.
    """
    text = processing_conf.read_text().replace(
        'worker = "demo"\n', 'worker = "demo"\nshared_group = "demo"\n'
    )
    processing_conf.write_text(text + notify_toml)
    second = processing_conf.with_name("processing-2.toml")
    second.write_text((text + notify_toml).replace('worker = "demo"', 'worker = "demo-2"'))
    return second


def wait_connected(
    directory: Path, workers: list[subprocess.Popen[bytes]], timeout_s: float = 60
) -> None:
    """Wait until both workers have subscribed: MQTT drops what is published before."""
    logs = [directory / "processing.log", directory / "processing-2.log"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.poll() is None for p in workers):
        texts = [log.read_text(errors="replace") if log.exists() else "" for log in logs]
        if all('"connected to broker", "session_present"' in t for t in texts):
            return
        time.sleep(0.2)


def finish(directory: Path, study: str, env: dict[str, str], participants: int) -> str:
    """Start the dashboard; the lines the demo prints about it and about delivery."""
    url, user, password = start_dashboard(directory, study, env, participants)
    mails, hooks = inbox_counts(directory)
    return (
        f"Alert delivery (two workers, one rules runner): {mails} e-mail(s) and {hooks} webhook "
        f"call(s) received\n  in {directory / 'inbox'}/ (local SMTP server and webhook receiver).\n"
        f"Staff dashboard: {url}\n  sign in as '{user}' with the one-time password {password}\n"
        f"  (you choose your own at first sign-in); stop it: kill $(cat {directory}/dashboard.pid)"
    )


def inbox_counts(directory: Path) -> tuple[int, int]:
    """(e-mails, webhook calls) received so far."""
    inbox = directory / "inbox"
    return len(list(inbox.glob("mail-*.eml"))), len(list(inbox.glob("webhook-*.json")))


def start_dashboard(
    directory: Path, study: str, env: dict[str, str], participants: int
) -> tuple[str, str, str]:
    """Start the dashboard (detached); (URL, user, one-time password)."""
    from processing.admin.registry import Registry
    from processing.dashboard.accounts import Accounts, new_password

    registry = Registry(directory / "registry.json", study)  # as `wellsense enroll` keeps it
    for i in range(1, participants + 1):
        registry.add(f"p-{i:04d}", "gw-demo")
    registry.save()
    port = _free_port()
    token = directory / "dashboard-influx.token"
    token.write_text(env["WELLSENSE_INFLUX_TOKEN"])
    token.chmod(0o600)
    config = directory / "dashboard.toml"
    config.write_text(
        "# Written by `wellsense demo`; see deploy/server/dashboard.sample.toml. The demo uses\n"
        "# the local operator token; in a study give the dashboard a read-only token.\n"
        f'[dashboard]\nstudy = "{study}"\nlisten = "127.0.0.1:{port}"\n'
        f'state_dir = "{directory / "dashboard"}"\nsecure_cookies = false\n'
        f'registry = "{directory / "registry.json"}"\n'
        f'[influx]\nurl = "{env["WELLSENSE_INFLUX_URL"]}"\norg = "{env["WELLSENSE_INFLUX_ORG"]}"\n'
        f'bucket = "{env["WELLSENSE_INFLUX_BUCKET"]}"\ntoken_file = "{token}"\n'
    )
    password = new_password()
    box = Accounts(directory / "dashboard" / "accounts.sqlite")
    try:
        box.add_user("admin", "admin", password, must_change=True)
    finally:
        box.close()
    child = {k: v for k, v in env.items() if k != "WELLSENSE_INFLUX_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wellsense_cli.main", "dashboard", "--config", str(config)],
        stdout=(directory / "dashboard.log").open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=child,
        start_new_session=True,  # keeps running after the demo, like the services
    )
    (directory / "dashboard.pid").write_text(f"{proc.pid}\n")
    return f"http://127.0.0.1:{port}/", "admin", password


def _serve_inbox(inbox: Path, smtp_port: int, http_port: int) -> None:
    from aiosmtpd.controller import Controller

    lock = threading.Lock()
    count = [0]

    def store(kind: str, data: bytes) -> None:
        with lock:
            count[0] += 1
            (inbox / f"{kind}-{count[0]:04d}.{'eml' if kind == 'mail' else 'json'}").write_bytes(
                data
            )

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            store("mail", envelope.original_content or envelope.content)
            return "250 OK"

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            store("webhook", json.dumps({"path": self.path, "body": json.loads(body)}).encode())
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", http_port), Hook)
    print(f"inbox: smtp 127.0.0.1:{smtp_port}, webhooks http://127.0.0.1:{http_port}/", flush=True)
    try:
        httpd.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "inbox":
        _serve_inbox(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        print("usage: python -m wellsense_cli.demo_staff inbox DIR SMTP_PORT HTTP_PORT")
        sys.exit(2)
