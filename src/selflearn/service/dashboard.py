"""The web dashboard (``selflearn serve``, at ``/``): see and steer what the assistant learned.

Server-rendered (Jinja2 templates in ``data/dashboard``), plain HTML forms, no CDN: the only script is plotly's own
bundle, served from the installed plotly package as one static file. Sign-in takes the same bearer tokens as the
API: the login form puts the token in an HttpOnly, SameSite=Strict cookie, and every page checks it like the API
checks its header. A home token sees its own home (the global rules that apply there, its people's personal rules,
turns and preferences); an admin token sees every home and alone may roll back an artifact set, pin a global rule
or disable it everywhere (a home's disable of a global rule applies to that home only). Every action is a POST
that redirects back (303); a POST whose Origin is another site is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import plotly
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from selflearn.service import people_page, quality_pages, rules_page
from selflearn.service.pages import ASSETS, COOKIE, logs_of, read_form, render
from selflearn.service.snapshot import Logs

if TYPE_CHECKING:
    from selflearn.service.service import Service

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


def mount(app: FastAPI, service: Service) -> None:
    """Serve the dashboard from ``app`` (``create_app`` calls this)."""
    app.state.dashboard_logs = logs = Logs(service)
    service.on_forget.append(logs.forget)
    for pages in (router, rules_page.router, quality_pages.router, people_page.router):
        app.include_router(pages)


# ---------------------------------------------------------------- sign-in and assets


@router.get("/dashboard/login")
def login_form(request: Request) -> HTMLResponse:
    logs_of(request).start()  # a head start on the snapshot while someone signs in
    return render(request, "login.html", None, error=None)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("token", "").strip()
    service: Service = request.app.state.service
    if not token or service.tokens.check(token) is None:
        refused = render(request, "login.html", None, error="Unknown token.")
        refused.status_code = 401
        return refused
    logs_of(request).start()
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/dashboard/static/plotly.min.js")
def plotly_js() -> FileResponse:
    """plotly's bundle from the installed plotly package: one cacheable file, never inlined, never a CDN."""
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/dashboard/static/{name}")
def static(name: str) -> FileResponse:
    path = ASSETS / "static" / name
    if name not in {p.name for p in (ASSETS / "static").iterdir()}:  # a listed name, never a path from the client
        raise HTTPException(404, f"no asset {name!r}")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})
