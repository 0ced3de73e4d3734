"""What every dashboard page shares: who is looking (the sign-in cookie's token), reading a POSTed form (a cross-site
Origin refused), redirecting back, rendering a template, and the gate that waits for the first snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from selflearn import paths
from selflearn.home import Home
from selflearn.service.snapshot import Logs, Snapshot
from selflearn.service.tokens import TokenInfo

if TYPE_CHECKING:
    from selflearn.service.service import Service

ASSETS = paths.PACKAGE_DATA / "dashboard"
COOKIE = "selflearn_dashboard"
PAGE_SIZE = 25
REFRESH_SECONDS = 2  # how often the "still reading" page reloads itself

templates = Jinja2Templates(directory=ASSETS / "templates")


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the token and the homes it may see."""

    token: TokenInfo
    """The signed-in token's record."""
    homes: dict[str, Home]
    """Home id -> home: its own for a home token, all served homes for an admin."""

    @property
    def users(self) -> dict[str, Home]:
        return {p.id: h for h in self.homes.values() for p in h.people}

    def scope(self) -> str | None:
        """Where this viewer's disables apply: its home, or everywhere (None) for an admin."""
        return None if self.token.admin else self.token.home


def logs_of(request: Request) -> Logs:
    logs: Logs = request.app.state.dashboard_logs
    return logs


def viewer_of(request: Request) -> Viewer | None:
    service: Service = request.app.state.service
    token = request.cookies.get(COOKIE)
    info = service.tokens.check(token) if token else None
    if info is None:
        return None
    homes = service.homes if info.admin else {k: v for k, v in service.homes.items() if k == info.home}
    return Viewer(info, homes)


def signed_in(request: Request) -> Viewer:
    viewer = viewer_of(request)
    if viewer is None:
        raise HTTPException(401, "sign in first")
    return viewer


async def read_form(request: Request) -> dict[str, str]:
    """A POSTed form (urlencoded), after refusing a cross-site Origin (the cookie is SameSite=Strict as well)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-site request refused")
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body).items()}


def back(request: Request, default: str = "/") -> RedirectResponse:
    """Back to the page the form was on (same site only)."""
    referer = urlsplit(request.headers.get("referer", ""))
    local = referer.path.startswith("/") and not referer.path.startswith("//")  # never "//other.site/..."
    target = referer.path + (f"?{referer.query}" if referer.query else "") if local else default
    return RedirectResponse(target, status_code=303)


def render(request: Request, name: str, viewer: Viewer | None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"viewer": viewer, "page": name.removesuffix(".html")} | context)


def page_gate(request: Request) -> tuple[Viewer, Snapshot] | Response:
    """What every page checks first: signed in (else the sign-in page) and a first snapshot built (else the
    self-refreshing "still reading" page, so no page waits for a whole store to be scored)."""
    viewer = viewer_of(request)
    if viewer is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    snapshot = logs_of(request).current()
    if snapshot is None:
        return _reading(request, viewer)
    return viewer, snapshot


def _reading(request: Request, viewer: Viewer) -> HTMLResponse:
    """The page shown while the first snapshot is built: it says how much is being read and reloads itself."""
    return render(request, "reading.html", viewer, turns=logs_of(request).reading, refresh=REFRESH_SECONDS)
