"""Dashboard sign-in, sessions, CSRF, roles and the audit log (Starlette's test client).

The InfluxDB side is replaced by an empty study (no participants): these
tests are about who may do what; the browser test reads real data.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from processing.dashboard.accounts import AccountError, Accounts
from processing.dashboard.app import create_app
from processing.dashboard.settings import DashboardConfig
from processing.research.settings import Connection

PASSWORD = "correct horse battery"


class EmptyStudy:
    """No participants, no alerts: enough for the pages that the role tests open."""

    store: Any = None

    def clock(self) -> int:
        return 1_764_115_200_000_000_000

    def overview(self) -> tuple[list[Any], list[Any], int]:
        return [], [], self.clock()

    def participant_known(self, participant: str) -> bool:
        return False


def config(tmp_path: Path, secure: bool = False) -> DashboardConfig:
    conn = Connection("http://127.0.0.1:9", "org", "bucket", "token", "s1", "UTC")
    return DashboardConfig(
        tmp_path / "d.toml", "s1", "127.0.0.1", 0, tmp_path / "state", "UTC", secure, None, conn
    )


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, Accounts]:
    cfg = config(tmp_path)
    box = Accounts(cfg.accounts_path)
    for name, role in (("sam", "staff"), ("rita", "researcher"), ("ada", "admin")):
        box.add_user(name, role, PASSWORD)
    client = TestClient(create_app(cfg, EmptyStudy()), base_url="http://127.0.0.1")  # type: ignore[arg-type]
    return client, box


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    form = client.get("/login")
    return client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "username": name, "password": password},
        follow_redirects=False,
    )


def test_passwords_are_argon2id_hashes_and_the_file_is_private(app: Any, tmp_path: Path) -> None:
    _, box = app
    row = box.db.execute("SELECT hash FROM user WHERE name = 'sam'").fetchone()
    assert row[0].startswith("$argon2id$") and PASSWORD not in row[0]
    assert oct(box.path.stat().st_mode & 0o777) == "0o600"
    assert box.verify("sam", PASSWORD) is not None
    assert box.verify("sam", PASSWORD + "x") is None
    assert box.verify("nobody", PASSWORD) is None
    with pytest.raises(AccountError, match="at least 12"):
        box.add_user("tim", "staff", "short")
    with pytest.raises(AccountError, match="not one of"):
        box.add_user("tim", "boss", PASSWORD)


def test_pages_need_a_session(app: Any) -> None:
    client, _ = app
    for path in ("/", "/audit", "/participant/p-1", "/password"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login"), path


def test_sign_in_sets_a_strict_http_only_cookie(app: Any) -> None:
    client, box = app
    r = sign_in(client, "sam")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    stored = box.db.execute("SELECT token_sha256 FROM session").fetchall()
    assert all(token not in s[0] for s in stored)  # only the hash is stored
    assert client.get("/").status_code == 200


def test_secure_cookies_get_the_host_prefix(tmp_path: Path) -> None:
    cfg = config(tmp_path, secure=True)
    Accounts(cfg.accounts_path).add_user("sam", "staff", PASSWORD)
    client = TestClient(create_app(cfg, EmptyStudy()), base_url="https://127.0.0.1")  # type: ignore[arg-type]
    r = sign_in(client, "sam")
    assert r.headers["set-cookie"].startswith("__Host-wellsense=")
    assert "Secure" in r.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_audited(app: Any) -> None:
    client, box = app
    r = sign_in(client, "sam", "not the password")
    assert r.status_code == 401 and "not right" in r.text
    assert ("sam", "sign-in failed") in [(e[1], e[2]) for e in box.audit_log()]


def test_five_wrong_passwords_lock_the_name_for_a_while(app: Any) -> None:
    client, _ = app
    for _ in range(5):
        assert sign_in(client, "rita", "wrong password!!").status_code == 401
    r = sign_in(client, "rita")  # the right password, too late
    assert r.status_code == 429 and "Wait 15 minutes" in r.text
    assert sign_in(client, "sam").status_code == 303  # other users are not affected


def test_login_without_the_form_token_is_refused(app: Any) -> None:
    client, _ = app
    client.get("/login")
    r = client.post("/login", data={"csrf": "forged", "username": "sam", "password": PASSWORD})
    assert r.status_code == 403


def test_every_post_needs_the_session_csrf_token(app: Any) -> None:
    client, box = app
    sign_in(client, "sam")
    token = csrf_of(client.get("/").text)
    form = {"participant": "p-1", "rule": "r", "subject": "p-1", "since_ns": "1", "note": "called"}
    assert client.post("/alerts/ack", data=form).status_code == 403
    assert client.post("/alerts/ack", data={**form, "csrf": "x" * len(token)}).status_code == 403
    r = client.post(
        "/alerts/ack", data={**form, "csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert box.acks() == {}
    r = client.post("/alerts/ack", data={**form, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    [ack] = box.acks().values()
    assert (ack.user, ack.note) == ("sam", "called")
    assert client.post("/logout", data={}).status_code == 403  # sign-out is a POST with CSRF too


@pytest.mark.parametrize(
    ("user", "audit", "export"),
    [("sam", 403, 403), ("rita", 403, 404), ("ada", 200, 404)],
)
def test_roles(app: Any, user: str, audit: int, export: int) -> None:
    client, box = app
    sign_in(client, user)
    assert client.get("/audit").status_code == audit
    # export of an unknown participant: 404 once the role allows it
    assert client.get("/participant/p-9/export.csv?measurement=hr").status_code == export
    if audit == 403:
        assert "Your role" in client.get("/audit").text
        assert (user, "refused", "/audit") in [(e[1], e[2], e[3]) for e in box.audit_log()]


def test_the_audit_log_is_append_only(app: Any) -> None:
    _, box = app
    box.audit("sam", "viewed", "overview")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        box.db.execute("DELETE FROM audit")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        box.db.execute("UPDATE audit SET user = 'x'")


def test_a_one_time_password_must_be_changed_first(app: Any) -> None:
    client, box = app
    box.add_user("newbie", "staff", "one-time-pass-123", must_change=True)
    r = sign_in(client, "newbie", "one-time-pass-123")
    assert r.headers["location"] == "/password"
    assert client.get("/", follow_redirects=False).headers["location"] == "/password"
    token = csrf_of(client.get("/password").text)
    r = client.post(
        "/password",
        data={"csrf": token, "current": "one-time-pass-123", "new": "my own long password"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/").status_code == 200
    assert box.verify("newbie", "one-time-pass-123") is None


def test_headers_allow_nothing_from_elsewhere(app: Any) -> None:
    client, _ = app
    r = client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp.replace("default-src", "")
    assert "<script" not in r.text and "http" not in r.text.split("<body>")[1].split("</form>")[0]


def test_the_sample_configuration_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from processing.dashboard.settings import ConfigError, load

    monkeypatch.setenv("WELLSENSE_INFLUX_TOKEN", "read-only-token-from-env")
    sample = Path(__file__).resolve().parents[2] / "deploy" / "server" / "dashboard.sample.toml"
    cfg = load(sample)
    assert (cfg.study, cfg.port, cfg.secure_cookies) == ("pilot-1", 8787, True)
    assert "read-only-token" not in repr(cfg)
    bad = tmp_path / "bad.toml"
    bad.write_text(sample.read_text().replace('"127.0.0.1:8787"', '"8787"'))
    with pytest.raises(ConfigError, match=r"\[dashboard\] listen: expected HOST:PORT"):
        load(bad)
    bad.write_text(sample.read_text() + 'token = "inline"\n')
    with pytest.raises(ConfigError, match="secrets are not allowed inline"):
        load(bad)


def _luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rrggbb``."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize(
    ("fg", "bg"),
    [
        ("--ink", "--bg"),  # body text
        ("--muted", "--bg"),  # notes
        ("--link", "--bg"),  # links
        ("--ink", "--band"),  # table headers
        ("#ffffff", "#12355b"),  # header bar
        ("#ffffff", "--alert"),  # alert badges and the error colour's background
        ("--alert", "--bg"),  # error text
        ("--warn", "#fff3cd"),  # handled badges
        ("--ok", "#e6f4ea"),  # "none" / online badges
        ("--ink", "--focus"),  # the focused skip link
    ],
)
def test_colours_meet_wcag_aa_contrast(fg: str, bg: str) -> None:
    css = (
        Path(__file__).resolve().parents[2] / "processing/dashboard/static/style.css"
    ).read_text()
    palette = dict(re.findall(r"(--[a-z]+):\s*(#[0-9a-f]{6})", css))

    def colour(name: str) -> str:
        return palette[name] if name.startswith("--") else name

    hi, lo = sorted((_luminance(colour(fg)), _luminance(colour(bg))), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5


def test_user_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import io

    from processing.dashboard import cli

    monkeypatch.setenv("WELLSENSE_INFLUX_TOKEN", "t")
    cfg = tmp_path / "d.toml"
    cfg.write_text(
        f'[dashboard]\nstudy = "s1"\nstate_dir = "{tmp_path / "state"}"\n'
        '[influx]\nurl = "http://127.0.0.1:9"\norg = "o"\nbucket = "b"\n'
    )
    assert (
        cli.main(["--config", str(cfg), "user", "add", "anna", "--role", "staff", "--one-time"])
        == 0
    )
    password = capsys.readouterr().out.strip().rsplit(" ", 1)[1]
    assert (
        cli.main(["user", "add", "anna", "--role", "admin", "--one-time", "--config", str(cfg)])
        == 1
    )
    assert cli.main(["user", "role", "anna", "researcher", "--config", str(cfg)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["user", "passwd", "anna", "--password-stdin", "--config", str(cfg)]) == 1
    capsys.readouterr()
    assert cli.main(["user", "list", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out == "anna\tresearcher\tmust change password\n"
    box = Accounts(tmp_path / "state" / "accounts.sqlite")
    assert box.verify("anna", password) is not None
    actions = [e[2] for e in box.audit_log()]
    assert actions == ["user role", "user add"]
