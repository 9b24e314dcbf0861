"""Staff log in and out (people; machines use API keys).

The session cookie is HttpOnly, SameSite=Lax, and Secure behind HTTPS. The login form
carries a double-submit CSRF token (a cookie and a field that must match); forms of a
logged-in session carry the session's own token (see ``require_csrf``).
"""

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mapserver.access import SESSION_COOKIE, principal
from mapserver.logs import event
from mapserver.pages import page_context, templates
from mapserver.sessions import SESSION_HOURS, LockedOut, log_in, log_out

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "mslogin"


def _secure(request: Request) -> bool:
    return request.app.state.settings.base_url.startswith("https://")


def _safe_next(target: str | None) -> str:
    """Only paths on this site: no open redirects."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _form(
    request: Request, status: int = 200, error: str | None = None, email: str = ""
) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            **page_context(request),
            "csrf_token": token,
            "error": error,
            "email": email,
            "next": _safe_next(request.query_params.get("next")),
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
        max_age=3600, path="/login",
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    sent, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent, expected):
        return _form(request, 400, "The form expired. Enter your details again.", email)
    if not email or not password:
        return _form(request, 400, "Enter your email address and password.", email)
    engine = request.app.state.engine
    try:
        session = await run_in_threadpool(log_in, engine, email, password)
    except LockedOut:
        event("sign-in locked out")  # no email in the log: it is personal data
        return _form(request, 429, "Too many failed attempts. Try again in 15 minutes.", email)
    if session is None:
        event("sign-in failed")
        return _form(request, 401, "The email address or password is not right.", email)
    event("signed in")
    response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.token, httponly=True, samesite="lax", secure=_secure(request),
        max_age=SESSION_HOURS * 3600, path="/",
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def csrf_ok(request: Request, sent: str) -> bool:
    """A logged-in form's token matches its session's."""
    expected = request.scope.get("csrf_token")
    return bool(expected) and hmac.compare_digest(sent, expected)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    token = request.cookies.get(SESSION_COOKIE)
    if principal(request).user_id is None or not token:
        return RedirectResponse("/", status_code=303)
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        return Response("The form expired; log out again.", status_code=400)
    await run_in_threadpool(log_out, request.app.state.engine, token)
    event("signed out", user_id=principal(request).user_id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
