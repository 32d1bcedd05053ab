"""Admin authentication: encrypted sessions, CSRF, login throttling, HTTP Basic, headers.

Stable interface for the pages: check_login, logout, change_password, csrf_token,
current_admin, must_change_password, setup_auth. Rules enforced by `admin_guard` for every
path under /admin (except /admin/static/):

- not signed in: /admin/api/* answers 401 JSON, pages redirect to /admin/login?next=...;
  public: /admin/login, /admin/logout, /admin/api/login, /admin/api/logout and
  /admin/api/session (answers username null when signed out);
- HTTP Basic (`Authorization: Basic`, scripts) works everywhere, needs no CSRF token and is
  throttled like the login form; a browser's cross-site request (`Sec-Fetch-Site:
  cross-site`) cannot use it;
- a signed-in POST/PATCH/PUT/DELETE under /admin/api/ must send `Content-Type:
  application/json` or no body at all (415 otherwise), so a cross-site HTML form (which cannot
  send that type without a CORS preflight) cannot drive the API with cached Basic credentials;
- a browser session's POST/PATCH/PUT/DELETE must carry its CSRF token (`X-CSRF-Token` header
  or `csrf_token` form field), else 403 and the handler never runs; /admin/api/login instead
  requires a JSON content type (a cross-site form cannot send one);
- while the default password admin/admin is in force, everything except changing it is
  refused (403 JSON, or a redirect to /admin/password), HTTP Basic included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp_session
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography import fernet

from api.core.clients import client_ip
from appkeys import AUTH, CONFIG, REGISTRY, AppState
from state.secrets import (
    DEFAULT_PASSWORD,
    password_problems,
    session_key,
    set_admin_password,
    verify_password,
)
from web.jsonapi import BODY_TIMEOUT, json_error
from web.throttle import FORGET_AFTER, FREE_ATTEMPTS, MAX_BACKOFF, Throttle

log = logging.getLogger(__name__)
__all__ = ["FORGET_AFTER", "FREE_ATTEMPTS", "MAX_BACKOFF", "Throttle"]

COOKIE_NAME = "o2o_admin"
COOKIE_PATH = "/admin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_PATHS = frozenset(
    {"/admin/login", "/admin/logout", "/admin/api/login", "/admin/api/logout", "/admin/api/session"}
)
# Reachable while the default password is in force: changing it, and leaving.
PASSWORD_PATHS = frozenset(
    {
        "/admin/password",
        "/admin/api/password",
        "/admin/api/session",
        "/admin/login",
        "/admin/logout",
        "/admin/api/logout",
    }
)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class SessionStorage(EncryptedCookieStorage):
    """Encrypted cookie sessions whose key is set at startup and whose Secure flag follows
    the request (cookie_secure: auto/always/never)."""

    def __init__(self, app: web.Application) -> None:
        # A throwaway key until startup loads the real one; never used for a real cookie.
        super().__init__(
            fernet.Fernet(fernet.Fernet.generate_key()),
            cookie_name=COOKIE_NAME,
            httponly=True,
            samesite="Strict",
            path=COOKIE_PATH,
        )
        self.app = app

    def set_key(self, key: bytes) -> None:
        """Install the real Fernet key."""
        self._fernet = fernet.Fernet(key)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        """Write the cookie with Secure set per request."""
        if session.empty:
            response.del_cookie(self.cookie_name, path=COOKIE_PATH)
            return
        data = self._encoder(self._get_session_data(session)).encode("utf-8")
        # No max-age: a browser-session cookie; idle expiry is checked server-side.
        response.set_cookie(
            self.cookie_name,
            self._fernet.encrypt(data).decode("utf-8"),
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=is_https(request),
        )


@dataclass
class AuthState:
    """Mutable auth state kept on the app."""

    storage: SessionStorage
    throttle: Throttle = field(default_factory=Throttle)
    # scrypt checks at once (they run on the default executor, shared with other work)
    verify_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))


def is_https(request: web.Request) -> bool:
    """Whether the Secure cookie flag applies (cookie_secure, X-Forwarded-Proto if trusted)."""
    registry = request.config_dict[REGISTRY]
    mode = registry.setting("cookie_secure")
    if mode in ("always", "never"):
        return bool(mode == "always")
    if registry.setting("trust_proxy"):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto:
            return proto == "https"
    return request.scheme == "https"


def _epoch(app: AppState) -> str:
    """Changes when the password changes, so older sessions end."""
    stored = app[REGISTRY].admin_password_hash or "default"
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def _app(request_or_app: web.Request | web.Application) -> AppState:
    """What the app (and its parents) hold, for a request or an app."""
    if isinstance(request_or_app, web.Request):
        return request_or_app.config_dict
    return request_or_app


async def must_change_password(request_or_app: web.Request | web.Application) -> bool:
    """True while the default admin/admin password is in force."""
    return _app(request_or_app)[REGISTRY].admin_password_hash is None


async def _password_ok(app: AppState, username: str, password: str) -> bool:
    """Constant-time check of user name and password (scrypt off the event loop)."""
    registry = app[REGISTRY]
    user_ok = hmac.compare_digest(username.encode(), registry.setting("admin_username").encode())
    stored = registry.admin_password_hash
    if stored is None:
        pw_ok = hmac.compare_digest(password.encode(), DEFAULT_PASSWORD.encode())
    else:
        loop = asyncio.get_running_loop()
        async with app[AUTH].verify_slots:
            pw_ok = await loop.run_in_executor(None, verify_password, password, stored)
    return user_ok and pw_ok


async def _attempt(request: web.Request, username: str, password: str) -> tuple[int, str, float]:
    """Check credentials under throttling: (status, message, retry_after); 200 = OK.

    Attempts for the same IP or user name take turns, so each sees the failures counted
    before it (concurrent guesses cannot all pass the back-off check at once).
    """
    throttle = request.config_dict[AUTH].throttle
    keys = [f"ip:{client_ip(request)}", f"user:{username.lower()}"]
    async with throttle.turn(keys):
        wait = throttle.wait(keys, time.monotonic())
        if wait > 0:
            secs = int(wait) + 1
            return 429, f"Too many failed logins. Try again in {secs} seconds.", secs
        if await _password_ok(request.config_dict, username, password):
            throttle.success(keys)
            return 200, "", 0
        throttle.fail(keys, time.monotonic())
    # An unknown name is often a password typed into the wrong field: log only its length.
    known = username == request.config_dict[REGISTRY].setting("admin_username")
    who = repr(username) if known else f"<unknown user name, {len(username)} chars>"
    log.warning("failed admin login for user %s from %s", who, client_ip(request))
    return 401, "Wrong user name or password.", 0


async def _start_session(request: web.Request, username: str) -> aiohttp_session.Session:
    """A fresh session (no fixation) for a signed-in admin, with a new CSRF token."""
    session = await aiohttp_session.new_session(request)
    session["admin"] = username
    session["csrf"] = secrets.token_urlsafe(32)
    session["seen"] = int(time.time())
    session["epoch"] = _epoch(request.config_dict)
    return session


async def check_login(request: web.Request, username: str, password: str) -> str | None:
    """Sign in: None when OK (session started), else the message to show. Throttled."""
    status, message, _ = await _attempt(request, username, password)
    if status != 200:
        return message
    await _start_session(request, username)
    log.info("admin %r signed in from %s", username[:64], client_ip(request))
    return None


async def logout(request: web.Request) -> None:
    """End the browser session."""
    session = await aiohttp_session.get_session(request)
    session.invalidate()


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token (created on first use, also for the login form)."""
    session = await aiohttp_session.get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def _session_admin(request: web.Request) -> str | None:
    """The admin of a valid, non-idle browser session, refreshing its idle timer."""
    session = await aiohttp_session.get_session(request)
    user = session.get("admin")
    if not isinstance(user, str):
        return None
    now = int(time.time())
    idle = request.config_dict[REGISTRY].setting("session_idle_minutes") * 60
    seen = session.get("seen")
    if (
        not isinstance(seen, int)
        or now - seen > idle
        or session.get("epoch") != _epoch(request.config_dict)
    ):
        session.invalidate()
        return None
    if now - seen >= 30:  # re-issue the cookie at most every 30 s to slide the idle window
        session["seen"] = now
    return user


async def current_admin(request: web.Request) -> str | None:
    """The signed-in admin's name (session or HTTP Basic), or None."""
    user = request.get("admin_user")
    if isinstance(user, str):
        return user
    return await _session_admin(request)


async def change_password(
    request: web.Request, current: str, new: str, confirm: str
) -> dict[str, str]:
    """Change the admin password; returns field -> error message (empty = changed)."""
    app = request.config_dict
    username = await current_admin(request) or app[REGISTRY].setting("admin_username")
    errors: dict[str, str] = {}
    status, message, _ = await _attempt(request, username, current)
    if status != 200:
        errors["current"] = message if status == 429 else "The current password is wrong."
    problem = password_problems(new, username)
    if problem:
        errors["new"] = problem
    elif new == current:
        errors["new"] = "The new password must differ from the current one."
    if confirm != new:
        errors["confirm"] = "The two new passwords differ."
    if errors:
        return errors
    await set_admin_password(app[REGISTRY], new)
    log.info("admin password changed")
    session = await aiohttp_session.get_session(request)
    if request.get("admin_via") != "basic" and isinstance(session.get("admin"), str):
        session["epoch"] = _epoch(app)  # this session stays valid; all others end
        session["csrf"] = secrets.token_urlsafe(32)
    return {}


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        )
    except ValueError:  # binascii.Error, UnicodeDecodeError, a non-ASCII token
        return ("", "\x00invalid")
    return (user, password) if sep else ("", "\x00invalid")


class BadForm(Exception):
    """A form body that cannot be read: undecodable (400) or not sent in time (408)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _csrf_ok(request: web.Request) -> bool:
    """Whether an unsafe request carries the session's CSRF token; BadForm if unreadable."""
    session = await aiohttp_session.get_session(request)
    expected = session.get("csrf")
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                form = await request.post()  # cached: the handler can read it again
        except ValueError:  # UnicodeDecodeError and multipart parse errors
            raise BadForm(
                400, "The form body cannot be read (it must be UTF-8 form data)."
            ) from None
        except TimeoutError:
            raise BadForm(
                408, f"The form body did not arrive within {BODY_TIMEOUT:g} seconds."
            ) from None
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    # Tokens are ASCII; an undecodable header arrives as lone surrogates.
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and sent.isascii()
        and hmac.compare_digest(expected.encode(), sent.encode())
    )


# The content types a cross-site form or a no-cors fetch can send without a CORS preflight.
CORS_SAFELISTED = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)


def _json_or_no_body(request: web.Request) -> bool:
    """A JSON body, or no body at all (POST .../rotate) sent without a form content type."""
    if request.content_type == "application/json":
        return True
    if request.body_exists:  # a no-cors Blob body has no Content-Type at all
        return False
    return "Content-Type" not in request.headers or request.content_type not in CORS_SAFELISTED


def _refuse(
    request: web.Request,
    is_api: bool,
    status: int,
    message: str,
    location: str,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """A JSON error for the API, a redirect for pages."""
    if is_api:
        return json_error(
            status, message, "password" if location == "/admin/password" else None, headers
        )
    raise web.HTTPSeeOther(location)


def is_static(request: web.Request) -> bool:
    """A request for the admin's static files (public, no session needed)."""
    resource = request.match_info.route.resource
    return resource is not None and resource.name == "admin_static"


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, CSRF and the forced password change for everything under /admin."""
    path = request.path
    if is_static(request):
        return await handler(request)
    is_api = path.startswith("/admin/api/")
    try:
        refusal = await _check(request, is_api)
    except web.HTTPException:
        raise  # redirects and aiohttp's own 4xx (e.g. 413 for a too-large form)
    except BadForm as exc:
        if is_api:
            return json_error(exc.status, exc.message)
        return web.Response(status=exc.status, text=exc.message)
    except Exception:  # never aiohttp's bare 500 page from the guard
        log.exception("admin sign-in check failed on %s %s", request.method, path)
        message = "Internal error while checking the sign-in; see the gateway log."
        if is_api:
            return json_error(500, message)
        return web.Response(status=500, text=message)
    if refusal is not None:
        return refusal
    return await handler(request)


async def _check(request: web.Request, is_api: bool) -> web.StreamResponse | None:
    """The guard's refusal for a request, or None to let it through."""
    path = request.path
    user: str | None = None
    creds = _basic_credentials(request)
    if creds is not None:
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return json_error(
                403, "HTTP Basic auth is not accepted on cross-site browser requests."
            )
        status, message, retry = await _attempt(request, *creds)
        if status != 200:
            headers = (
                {"Retry-After": str(int(retry))}
                if retry
                else {"WWW-Authenticate": 'Basic realm="ollama2openai admin", charset="UTF-8"'}
            )
            return json_error(status, message, headers=headers)
        user = creds[0]
        request["admin_user"], request["admin_via"] = user, "basic"
    else:
        user = await _session_admin(request)
        if user is not None:
            request["admin_user"], request["admin_via"] = user, "session"
        if request.method in UNSAFE_METHODS:
            if path == "/admin/api/login":
                if request.content_type != "application/json":
                    return json_error(
                        415, "Send the login as JSON (Content-Type: application/json)."
                    )
            elif not await _csrf_ok(request):
                message = (
                    "Missing or invalid CSRF token: reload the page and try again "
                    "(scripts: use HTTP Basic auth)."
                )
                if is_api:
                    return json_error(403, message, "csrf_token")
                return web.Response(status=403, text=message)
    if user is None:
        if path in PUBLIC_PATHS:
            return None
        if is_api:
            return json_error(
                401,
                "Not signed in: log in at /admin/login, or use HTTP Basic "
                "auth with the admin user name and password.",
            )
        raise web.HTTPFound(f"/admin/login?next={path}")
    if (
        is_api
        and request.method in UNSAFE_METHODS
        and request.match_info.http_exception is None
        and not _json_or_no_body(request)
    ):
        return json_error(
            415,
            "The admin API takes JSON: send Content-Type: application/json "
            f"(got {request.content_type}).",
        )
    if path not in PASSWORD_PATHS and await must_change_password(request):
        return _refuse(
            request,
            is_api,
            403,
            "The default admin password must be changed "
            "before anything else: POST /admin/api/password with "
            '{"current", "new", "confirm"}.',
            "/admin/password",
        )
    return None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CSP and friends on every admin response, including errors and redirects."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/admin/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


async def _session_key_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load or create the session secret (data dir, mode 0600) at startup."""
    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(None, session_key, config.session_secret, config.data_path)
    app[AUTH].storage.set_key(key)
    yield


def setup_auth(app: web.Application) -> None:
    """Install sessions, the admin guard, security headers and the JSON auth endpoints."""
    from web.auth_api import setup_auth_api
    from web.jsonapi import api_error_middleware

    storage = SessionStorage(app)
    app[AUTH] = AuthState(storage)
    aiohttp_session.setup(app, storage)
    # The JSON error handling wraps the guard, so nothing the guard raises on /admin/api/
    # escapes as a bare 500.
    app.middlewares.append(api_error_middleware)
    app.middlewares.append(admin_guard)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_session_key_ctx)
    setup_auth_api(app)
