"""The dashboard's Starlette application: routes, roles, CSRF, cookies, audit.

* Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure
  and ``__Host-`` prefixed unless ``secure_cookies = false`` on plain local
  HTTP); only its SHA-256 is stored (:mod:`.accounts`).
* CSRF: every POST carries the session's synchronizer token in a hidden
  field, compared in constant time; the login form uses a double-submit
  cookie. A POST whose ``Origin`` is another site is refused as well.
* Roles: staff < researcher < admin (:data:`.accounts.ROLES`); a page above
  the user's role answers 403 in plain words and is written to the audit log.
* Every page view, acknowledgement, export, sign-in (and failed sign-in)
  is appended to the audit log.
* Headers: a Content-Security-Policy that allows nothing from elsewhere and
  no scripts at all; the pages need none.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from processing.dashboard.accounts import (
    MAX_FAILURES,
    MIN_PASSWORD,
    AccountError,
    Accounts,
    Session,
)
from processing.dashboard.data import ALERT_LOOKBACK_DAYS, DAY_NS, NS, Data
from processing.dashboard.settings import DashboardConfig

HERE = Path(__file__).parent
EXPORTABLE = ("daily", "hr", "rr", "activity", "hrv_window", "device_status", "alert")
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]


def create_app(config: DashboardConfig, data: Data) -> Starlette:
    """The ASGI app for ``config``; ``data`` answers the InfluxDB questions."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    tz = config.connection.tz
    secure = config.secure_cookies
    cookie = "__Host-wellsense" if secure else "wellsense_session"
    login_cookie = "__Host-wellsense-login" if secure else "wellsense_login"

    def accounts() -> Accounts:
        return Accounts(config.accounts_path)

    def when(ns: int | None, wall: bool = False) -> str:
        if ns is None:
            return "never"
        return dt.datetime.fromtimestamp(ns / NS, tz).strftime("%Y-%m-%d %H:%M")

    def ago(ns: int | None) -> str:
        if ns is None:
            return "no data in 35 days"
        minutes = max(0, (data.clock() - ns) // (60 * NS))
        if minutes < 60:
            return f"{minutes} min ago"
        if minutes < 48 * 60:
            return f"{minutes // 60} h ago"
        return f"{minutes // (24 * 60)} days ago"

    def page(
        request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any
    ) -> Response:
        context = {
            "study": config.study,
            "user": session.user if session else None,
            "csrf": session.csrf if session else ctx.pop("csrf", ""),
            "timezone": config.timezone,
            "when": when,
            "ago": ago,
            **ctx,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(HEADERS)
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict"
        )

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":  # not sent, or hidden by a privacy setting
            return True
        return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"

    def forbidden(request: Request, session: Session, what: str) -> Response:
        return page(
            request,
            "error.html",
            session,
            403,
            heading="Not allowed",
            text=f"Your role ({session.user.role}) cannot open {what}. Ask a study admin if "
            "you need it.",
        )

    def guarded(role: str, what: str, *, post: bool = False) -> Callable[[Any], Handler]:
        """Signed in, the password changed if it was one-time, ``role`` or above, CSRF on POST."""

        def wrap(fn: Callable[..., Awaitable[Response]]) -> Handler:
            async def handler(request: Request) -> Response:
                box = accounts()
                try:
                    session = box.session(request.cookies.get(cookie))
                    if session is None:
                        if post:
                            return Response("Please sign in again.", 403, headers=HEADERS)
                        return RedirectResponse("/login", 303, headers=HEADERS)
                    form = await request.form() if post else None
                    if post:
                        token = str(form.get("csrf", "")) if form else ""
                        ok = hmac.compare_digest(token, session.csrf) and same_origin(request)
                        if not ok:
                            box.audit(session.user.name, "refused", request.url.path, "csrf")
                            return page(
                                request,
                                "error.html",
                                session,
                                403,
                                heading="Form expired",
                                text="This form is out of date. Go back, reload the page and "
                                "try again.",
                            )
                    if session.user.must_change and request.url.path != "/password":
                        return RedirectResponse("/password", 303, headers=HEADERS)
                    if not session.user.may(role):
                        box.audit(session.user.name, "refused", request.url.path, f"needs {role}")
                        return forbidden(request, session, what)
                    return await fn(request, session, box, form)
                finally:
                    box.close()

            return handler

        return wrap

    # -- sign in and out -----------------------------------------------------------

    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", None, csrf=token)
        set_cookie(response, login_cookie, token, 3600)
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("csrf", ""))
        expected = request.cookies.get(login_cookie, "")
        if not expected or not hmac.compare_digest(token, expected) or not same_origin(request):
            return page(
                request,
                "login.html",
                None,
                403,
                csrf=expected,
                error="The sign-in form had expired. Please try again.",
            )
        name = str(form.get("username", "")).strip().lower()[:64]
        password = str(form.get("password", ""))
        box = accounts()
        try:
            if box.recent_failures(name) >= MAX_FAILURES:
                box.audit(name or "-", "sign-in refused", "/login", "too many failures")
                return page(
                    request,
                    "login.html",
                    None,
                    429,
                    csrf=expected,
                    error="Too many wrong passwords for this user. Wait 15 minutes, or ask "
                    "a study admin to set a new password.",
                )
            user = await run_in_threadpool(box.verify, name, password)
            if user is None:
                box.audit(name or "-", "sign-in failed", "/login")
                return page(
                    request,
                    "login.html",
                    None,
                    401,
                    csrf=expected,
                    error="The user name or password is not right.",
                )
            session_token, _ = box.open_session(user)
            box.audit(user.name, "signed in", "/login")
        finally:
            box.close()
        response = RedirectResponse("/password" if user.must_change else "/", 303, headers=HEADERS)
        set_cookie(response, cookie, session_token, None)
        response.delete_cookie(login_cookie, path="/")
        return response

    @guarded("staff", "this page", post=True)
    async def logout(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        box.close_session(request.cookies.get(cookie))
        box.audit(session.user.name, "signed out", "/logout")
        response = RedirectResponse("/login", 303, headers=HEADERS)
        response.delete_cookie(cookie, path="/")
        return response

    @guarded("staff", "this page")
    async def password_form(
        request: Request, session: Session, box: Accounts, form: Any
    ) -> Response:
        return page(request, "password.html", session, min_length=MIN_PASSWORD)

    @guarded("staff", "this page", post=True)
    async def password(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        user = await run_in_threadpool(box.verify, session.user.name, str(form.get("current", "")))
        error = "The current password is not right." if user is None else ""
        if user is not None:
            try:
                await run_in_threadpool(box.set_password, user.name, str(form.get("new", "")))
            except AccountError as exc:
                error = str(exc).capitalize()
        if error:
            return page(
                request, "password.html", session, 400, error=error, min_length=MIN_PASSWORD
            )
        box.audit(session.user.name, "changed password", "/password")
        new_token, _ = box.open_session(session.user)  # set_password ended every session
        response = RedirectResponse("/", 303, headers=HEADERS)
        set_cookie(response, cookie, new_token, None)
        return response

    # -- pages ---------------------------------------------------------------------

    @guarded("staff", "the overview")
    async def overview(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        rows, gateway_alerts, now = await run_in_threadpool(data.overview)
        acks = box.acks()
        acked = set(acks)
        rows.sort(key=lambda r: (-r.attention(now, acked), r.participant))
        box.audit(session.user.name, "viewed", "overview")
        return page(
            request,
            "overview.html",
            session,
            rows=rows,
            gateway_alerts=gateway_alerts,
            acked=acked,
            now=when(now),
        )

    def participant_id(request: Request) -> str | None:
        from collector import wire

        pid = str(request.path_params["participant"])
        try:
            return wire.check_id(pid, "participant")
        except wire.WireError:
            return None

    @guarded("staff", "participant pages")
    async def participant(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        pid = participant_id(request)
        if pid is None or not await run_in_threadpool(data.participant_known, pid):
            return page(
                request,
                "error.html",
                session,
                404,
                heading="Not found",
                text="There is no participant with that pseudonym in this study.",
            )
        now = data.clock()
        alerts = await run_in_threadpool(
            data.alerts, pid, now - ALERT_LOOKBACK_DAYS * DAY_NS, now + 60 * NS
        )
        plots = await run_in_threadpool(data.plots, pid)
        box.audit(session.user.name, "viewed", f"participant {pid}")
        message = "Marked as handled." if request.query_params.get("acked") else ""
        return page(
            request,
            "participant.html",
            session,
            participant=pid,
            alerts=alerts,
            plots=plots,
            acks=box.acks(),
            message=message,
            measurements=EXPORTABLE,
        )

    @guarded("staff", "acknowledging alerts", post=True)
    async def acknowledge(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        from collector import wire

        try:
            pid = wire.check_id(str(form.get("participant", "")), "participant")
            since_ns = int(str(form.get("since_ns", "")))
        except (wire.WireError, ValueError):
            return Response("Bad request", 400, headers=HEADERS)
        rule = str(form.get("rule", ""))[:64]
        subject = str(form.get("subject", ""))[:200]
        note = str(form.get("note", "")).strip()
        if not note or not subject.startswith(pid):
            return Response("A note is required.", 400, headers=HEADERS)
        box.acknowledge(rule, subject, since_ns, session.user.name, note)
        box.audit(session.user.name, "acknowledged", f"{rule} {subject}", note)
        return RedirectResponse(f"/participant/{pid}?acked=1#alerts", 303, headers=HEADERS)

    @guarded("researcher", "exports")
    async def export(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        from processing.research.export import export as run_export

        pid = participant_id(request)
        measurement = request.query_params.get("measurement", "daily")
        if pid is None or measurement not in EXPORTABLE:
            return Response("Bad request", 400, headers=HEADERS)
        if not await run_in_threadpool(data.participant_known, pid):
            return Response("No such participant.", 404, headers=HEADERS)
        now = data.clock()
        out = Path(tempfile.mkdtemp(prefix="wellsense-dashboard-export-"))
        await run_in_threadpool(
            run_export,
            data.store,
            out,
            measurements=[measurement],
            participants=[pid],
            fmt="csv",
            start=now - ALERT_LOOKBACK_DAYS * DAY_NS,
            stop=now + 60 * NS,
        )
        box.audit(session.user.name, "exported", f"participant {pid}", measurement)
        files = sorted(out.rglob("*.csv"))
        if not files:
            shutil.rmtree(out, ignore_errors=True)
            return Response("Nothing to export.", 404, headers=HEADERS)
        return FileResponse(
            files[0],
            media_type="text/csv",
            filename=f"{config.study}-{pid}-{measurement}.csv",
            headers=HEADERS,
            background=BackgroundTask(shutil.rmtree, out, ignore_errors=True),
        )

    @guarded("admin", "the audit log")
    async def audit(request: Request, session: Session, box: Accounts, form: Any) -> Response:
        box.audit(session.user.name, "viewed", "audit log")
        return page(request, "audit.html", session, entries=box.audit_log())

    async def health(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    routes = [
        Route("/", overview),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/password", password_form, methods=["GET"]),
        Route("/password", password, methods=["POST"]),
        Route("/participant/{participant}", participant),
        Route("/participant/{participant}/export.csv", export),
        Route("/alerts/ack", acknowledge, methods=["POST"]),
        Route("/audit", audit),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes)
