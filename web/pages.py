"""Admin pages: template setup, static files, login, password change and the page routes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from state.secrets import MIN_PASSWORD_LENGTH
from web import auth
from web.pages_util import fmt_ago, fmt_bytes, fmt_num, fmt_time, ticks

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

NAV_ITEMS: tuple[tuple[str, str], ...] = (
    ("/admin", "Dashboard"),
    ("/admin/models", "Models"),
    ("/admin/keys", "Keys"),
    ("/admin/usage", "Usage"),
    ("/admin/settings", "Settings"),
)
# Paths that render without the navigation (nothing else is reachable from them).
_BARE_PAGES = frozenset({"/admin/login"})
# Fixed notices picked by `?notice=` after a redirect; no user text is ever reflected.
NOTICES: dict[str, tuple[str, str]] = {
    "password": ("ok", "Password changed."),
    "settings": ("ok", "Settings saved."),
    "logged_out": ("ok", "You are logged out."),
    "key_deleted": ("ok", "Key deleted."),
}


def _nav_active(path: str) -> str:
    """The nav entry that the current path belongs to."""
    best = "/admin"
    for href, _ in NAV_ITEMS:
        if path == href or path.startswith(href + "/"):
            best = href if len(href) > len(best) else best
    return best


async def admin_context(request: web.Request) -> dict[str, Any]:
    """Values every admin page template sees: CSRF token, signed-in admin, navigation."""
    path = request.path
    # aiohttp_jinja2 runs context processors as a middleware on every admin request, so
    # only pages pay for the session lookup; the JSON API and static files are left alone.
    if not _is_page(request):
        return {}
    user = await auth.current_admin(request)
    forced = bool(user) and bool(await auth.must_change_password(request))
    return {
        "request": request,
        "csrf_token": await auth.csrf_token(request),
        "admin_user": user,
        "show_nav": bool(user) and not forced and path not in _BARE_PAGES,
        "nav_items": NAV_ITEMS,
        "nav_active": _nav_active(path),
        "flash": _flash(request.query.get("notice", "")),
        "min_password_length": MIN_PASSWORD_LENGTH,
    }


def _flash(name: str) -> dict[str, str] | None:
    """The notice named in the query string, if it is a known one."""
    found = NOTICES.get(name)
    return {"kind": found[0], "text": found[1]} if found else None


def safe_next(value: str | None) -> str:
    """A post-login redirect target: only local admin paths, never another host."""
    if (
        value
        and value.startswith("/admin")
        and not value.startswith("/admin/login")
        and "//" not in value
        and "\\" not in value
    ):
        return value
    return "/admin"


_ERROR_TITLES = {404: "Page not found", 405: "Not allowed", 413: "Too large"}


def _is_page(request: web.Request) -> bool:
    """An admin HTML page (not the JSON API, not a static file)."""
    return not request.path.startswith("/admin/api/") and not auth.is_static(request)


@web.middleware
async def page_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admin page errors as an HTML page in the admin's look; never a bare 500."""
    if not _is_page(request):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status == 403:
            raise
        title = _ERROR_TITLES.get(exc.status, exc.reason)
        message = f"{request.method} {request.path}: {exc.reason}."
        status = exc.status
    except Exception:
        log.exception("unhandled error on admin page %s %s", request.method, request.path)
        title, message, status = (
            "Something went wrong",
            "The gateway hit an internal error; see its log.",
            500,
        )
    return aiohttp_jinja2.render_template(
        "error.html", request, {"title": title, "message": message}, status=status
    )


async def root(request: web.Request) -> web.StreamResponse:
    """`/admin/` leads to the admin's dashboard."""
    raise web.HTTPFound("/admin")


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET: the login form (or straight on when already signed in)."""
    if await auth.current_admin(request):
        raise web.HTTPFound(safe_next(request.query.get("next")))
    ctx = {"username": "", "error": None, "next_url": safe_next(request.query.get("next"))}
    return aiohttp_jinja2.render_template("login.html", request, ctx)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST: check the credentials; on failure re-render with the username kept."""
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "")))
    error = await auth.check_login(request, username, password)
    if error:
        ctx = {"username": username, "error": error, "next_url": next_url}
        return aiohttp_jinja2.render_template("login.html", request, ctx, status=401)
    # A default password sends the admin on to /admin/password (the auth middleware enforces it).
    if await auth.must_change_password(request):
        raise web.HTTPSeeOther("/admin/password")
    raise web.HTTPSeeOther(next_url)


async def logout_submit(request: web.Request) -> web.StreamResponse:
    """POST: end the session."""
    await auth.logout(request)
    raise web.HTTPSeeOther("/admin/login?notice=logged_out")


async def password_page(request: web.Request) -> web.StreamResponse:
    """GET: the password form (forced while the default password is in force)."""
    forced = bool(await auth.must_change_password(request))
    return aiohttp_jinja2.render_template(
        "password.html", request, {"forced": forced, "errors": {}}
    )


async def password_submit(request: web.Request) -> web.StreamResponse:
    """POST: change the password; errors are shown next to their fields."""
    form = await request.post()
    fields = [str(form.get(name, "")) for name in ("current", "new", "confirm")]
    errors = await auth.change_password(request, *fields)
    if errors:
        forced = bool(await auth.must_change_password(request))
        # Passwords are not echoed back into the page (they would sit in the HTML source).
        return aiohttp_jinja2.render_template(
            "password.html", request, {"forced": forced, "errors": errors}, status=400
        )
    raise web.HTTPSeeOther("/admin?notice=password")


def setup_pages(app: web.Application) -> None:
    """Set up Jinja2 (autoescaped), /admin/static/ and every admin page route."""
    from web.pages_dashboard import dashboard
    from web.pages_keys import keys_page
    from web.pages_models import models_page
    from web.pages_settings import settings_page
    from web.pages_try import try_model

    # Before aiohttp_jinja2.setup: its context middleware must run inside this one, so that
    # the error page still gets the CSRF token and navigation.
    app.middlewares.append(page_error_middleware)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        context_processors=[admin_context],
        filters={
            "bytes": fmt_bytes,
            "num": fmt_num,
            "datetime": fmt_time,
            "ago": fmt_ago,
            "ticks": ticks,
        },
    )
    app.router.add_static("/static/", STATIC_DIR, name="admin_static")
    app.router.add_get("/", root)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout_submit)
    app.router.add_get("/password", password_page)
    app.router.add_post("/password", password_submit)
    app.router.add_get("", dashboard)
    app.router.add_get("/models", models_page)
    app.router.add_get("/keys", keys_page)
    app.router.add_get("/settings", settings_page)
    app.router.add_post("/try", try_model)
