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

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import plotly
import plotly.graph_objects as go
import polars as pl
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from selflearn import paths
from selflearn.controls import Action, Control, Controls, rule_frame
from selflearn.gold import turn_truth
from selflearn.home import Home
from selflearn.learners.mining import RewriteTables
from selflearn.learners.signals import DefectSignals
from selflearn.runtime.feedback import FEEDBACK_QUESTION
from selflearn.schema import MAX_VALUE_CHARS
from selflearn.service.tokens import TokenInfo

if TYPE_CHECKING:
    from selflearn.service.service import Service

ASSETS = paths.PACKAGE_DATA / "dashboard"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
COOKIE = "selflearn_dashboard"
PAGE_SIZE = 25
LOGS_SECONDS = 5.0  # a snapshot of the scored logs older than this is rebuilt in the background
WAIT_SECONDS = 0.3  # how long a page waits for the first snapshot before showing the "still reading" page
REFRESH_SECONDS = 2  # how often the "still reading" page reloads itself
EXAMPLES = 3
SORTS = {  # the rule list's orders: the column first, then support
    "support": ["support", "probability"],
    "fixes": ["shadow_fixes", "support"],
    "breaks": ["shadow_breaks", "support"],
    "homes": ["distinct_homes", "support"],
    "people": ["distinct_users", "support"],
    "probability": ["probability", "support"],
}
SHADOW_FILTERS = {  # the shadow check's verdict on a rule (its evidence is null in a set learned without one)
    "fixed": pl.col("shadow_fixes") > 0,
    "broke": pl.col("shadow_breaks") > 0,
    "unchecked": pl.col("shadow_fixes").is_null(),
}

templates = Jinja2Templates(directory=ASSETS / "templates")
router = APIRouter(include_in_schema=False)


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


@dataclass(frozen=True)
class Snapshot:
    """What the pages read, computed from the store in one pass, per home (a viewer's pages only combine its homes)."""

    heard: dict[str, pl.DataFrame]
    """Home id -> its turns (ts, user_id, form, asr_text, response_text): rule evidence."""
    daily: pl.DataFrame
    """(home_id, day): turns, defects (signals), gold_turns, gold_defects, rewrites."""
    forms: pl.DataFrame
    """(home_id, form) with a defect: failures, turns, users, people (per user), examples (latest failing turns)."""
    user_turns: dict[str, int]
    """User id -> turns."""
    asked: dict[str, int]
    """Home id -> times "Did I get that right?" was asked."""
    answers: pl.DataFrame
    """Feedback answers (not teachings) beside what was said and answered, newest first."""


def build_snapshot(turns: pl.DataFrame, feedback: pl.DataFrame, truth: pl.DataFrame) -> Snapshot:
    """Score the turns with the defect signals and aggregate them per home for the pages."""
    scored = DefectSignals().score_frame(turns, feedback)
    request = scored.filter(~pl.col("meta"))
    judged = (
        request.join(truth, on="turn_id", how="left")
        if truth.height
        else request.with_columns(true_defect=pl.lit(None, dtype=pl.Boolean))
    )
    daily = judged.group_by("home_id", day=pl.col("ts").dt.date()).agg(
        turns=pl.len(),
        defects=pl.col("defect").sum(),
        gold_turns=pl.col("true_defect").is_not_null().sum(),
        gold_defects=pl.col("true_defect").sum(),
        rewrites=(pl.col("rewrite_source") != "none").sum(),
    )
    examples = (
        request.filter(pl.col("defect"))
        .sort("ts", descending=True)  # groups keep this order: the examples are the latest
        .group_by("home_id", "form")
        .agg(examples=pl.struct("ts", "user_id", "asr_text", "response_text", "result_status").head(EXAMPLES))
    )
    people = request.group_by("home_id", "form", "user_id").agg(failures=pl.col("defect").sum(), turns=pl.len())
    shares = people.group_by("home_id", "form").agg(people=pl.struct("user_id", "failures", "turns"))
    forms = _form_counts(shares).join(examples, on=["home_id", "form"], how="inner")
    asking = request.filter(pl.col("response_text").str.contains(FEEDBACK_QUESTION, literal=True))
    said = scored.select("turn_id", "home_id", "asr_text", "response_text")
    answers = feedback.filter(pl.col("kind") != "teach").join(said, on="turn_id", how="left")
    heard = scored.select("home_id", "ts", "user_id", "form", "asr_text", "response_text")
    return Snapshot(
        heard={str(k[0]): v for k, v in heard.partition_by("home_id", as_dict=True).items()},
        daily=daily,
        forms=forms,
        user_turns=dict(scored.group_by("user_id").len().iter_rows()),
        asked=dict(asking.group_by("home_id").len().iter_rows()),
        answers=answers.sort("ts", descending=True),
    )


class Logs:
    """The pages' ``Snapshot`` of the store, always built in a thread: scoring a million turns takes seconds, a page
    must not. The first touch of the dashboard starts the build; until it is done a page waits at most
    ``WAIT_SECONDS`` and then shows a self-refreshing "still reading" page. Later, a snapshot older than
    ``LOGS_SECONDS`` (or three times its build time, so a large store is not re-scored back to back) is rebuilt while
    pages are served from the last one. One build at a time; none starts, or reads the store, once the service
    closes."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._building = threading.Lock()  # held by the one running build, from its start to its end
        self._at = -math.inf
        self._every = LOGS_SECONDS
        self._snapshot: Snapshot | None = None
        self._built = threading.Event()  # set once the first snapshot exists
        self.reading: int | None = None  # turns in the store when the running build began reading it
        self._forgotten: list[str] = []  # people forgotten so far, in order: a build drops those after its read
        self._swap = threading.Lock()  # guards replacing the snapshot against a concurrent forget

    def _build(self) -> None:
        try:
            start = time.monotonic()
            self.service.flush()  # after a close the buffer is empty: this writes nothing
            with self.service.store_lock:
                if self.service.closed:
                    return
                self.reading = self.service.store.counts()["turns"]
                read_after = len(self._forgotten)
                logs = self.service.store.logs()
                truth = turn_truth(self.service.store)
            snapshot = build_snapshot(logs.turns(), logs.feedback(), truth)
            with self._swap:
                for user_id in self._forgotten[read_after:]:
                    snapshot = _without(snapshot, user_id)
                self._snapshot = snapshot
            if not self._built.is_set():  # plotly loads its figure code on first use (~1 s under load): not on a page
                trend_figure(snapshot.daily.head(1), []).to_json()
            self._at = time.monotonic()
            self._every = max(LOGS_SECONDS, 3 * (self._at - start))
            self._built.set()
        finally:
            self._building.release()

    def start(self) -> None:
        """Start a build unless one is running or the service is closed."""
        if not self.service.closed and self._building.acquire(blocking=False):
            # not a daemon (a thread started from a server's daemon worker would inherit that): an exit waits for it
            # rather than killing it inside the DuckDB / Polars code, which aborts the process
            threading.Thread(target=self._build, name="selflearn-dashboard-logs", daemon=False).start()

    def current(self) -> Snapshot | None:
        """The last snapshot (a stale one starts a rebuild), or None while the first is still being built."""
        if self._snapshot is None:
            self.start()
            self._built.wait(WAIT_SECONDS)
        elif time.monotonic() - self._at >= self._every:
            self.start()
        return self._snapshot

    def forget(self, user_id: str) -> None:
        """Drop a forgotten person's turns and words from the snapshot at once (``Service.forget`` calls this, from
        the API or a page), and from a build that read the store before they were forgotten; a rebuild starts."""
        with self._swap:
            self._forgotten.append(user_id)
            if self._snapshot is not None:
                self._snapshot = _without(self._snapshot, user_id)
        self._at = -math.inf


def _form_counts(forms: pl.DataFrame) -> pl.DataFrame:
    """Per failing form, its failures, turns and users from its ``people``; forms nobody failed on are dropped."""
    share = pl.col("people").list
    return forms.with_columns(
        failures=share.eval(pl.element().struct.field("failures")).list.sum(),
        turns=share.eval(pl.element().struct.field("turns")).list.sum(),
        users=share.len(),
    ).filter(pl.col("failures") > 0)


def _without(snap: Snapshot, user_id: str) -> Snapshot:
    """The snapshot without one person's turns and words: their share of each form (a form only they failed on
    goes), examples, answers and heard turns. The daily counts (no words) stay until the rebuild this starts."""
    others = pl.element().filter(pl.element().struct.field("user_id") != user_id)
    return Snapshot(
        heard={h: f.filter(pl.col("user_id") != user_id) for h, f in snap.heard.items()},
        daily=snap.daily,
        forms=_form_counts(snap.forms.with_columns(pl.col("people", "examples").list.eval(others))),
        user_turns={u: n for u, n in snap.user_turns.items() if u != user_id},
        asked=snap.asked,
        answers=snap.answers.filter(pl.col("user_id") != user_id),
    )


def mount(app: FastAPI, service: Service) -> None:
    """Serve the dashboard from ``app`` (``create_app`` calls this)."""
    app.state.dashboard_logs = logs = Logs(service)
    service.on_forget.append(logs.forget)
    app.include_router(router)


def _logs(request: Request) -> Logs:
    logs: Logs = request.app.state.dashboard_logs
    return logs


def _viewer(request: Request) -> Viewer | None:
    service: Service = request.app.state.service
    token = request.cookies.get(COOKIE)
    info = service.tokens.check(token) if token else None
    if info is None:
        return None
    homes = service.homes if info.admin else {k: v for k, v in service.homes.items() if k == info.home}
    return Viewer(info, homes)


def _signed_in(request: Request) -> Viewer:
    viewer = _viewer(request)
    if viewer is None:
        raise HTTPException(401, "sign in first")
    return viewer


async def _form(request: Request) -> dict[str, str]:
    """A POSTed form (urlencoded), after refusing a cross-site Origin (the cookie is SameSite=Strict as well)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-site request refused")
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body).items()}


def _back(request: Request, default: str = "/") -> RedirectResponse:
    """Back to the page the form was on (same site only)."""
    referer = urlsplit(request.headers.get("referer", ""))
    local = referer.path.startswith("/") and not referer.path.startswith("//")  # never "//other.site/..."
    target = referer.path + (f"?{referer.query}" if referer.query else "") if local else default
    return RedirectResponse(target, status_code=303)


def _page(request: Request, name: str, viewer: Viewer | None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"viewer": viewer, "page": name.removesuffix(".html")} | context)


def _gate(request: Request) -> tuple[Viewer, Snapshot] | Response:
    """What every page checks first: signed in (else the sign-in page) and a first snapshot built (else the
    self-refreshing "still reading" page, so no page waits for a whole store to be scored)."""
    viewer = _viewer(request)
    if viewer is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    snapshot = _logs(request).current()
    if snapshot is None:
        return _reading(request, viewer)
    return viewer, snapshot


def _reading(request: Request, viewer: Viewer) -> HTMLResponse:
    """The page shown while the first snapshot is built: it says how much is being read and reloads itself."""
    return _page(request, "reading.html", viewer, turns=_logs(request).reading, refresh=REFRESH_SECONDS)


# ---------------------------------------------------------------- sign-in and assets


@router.get("/dashboard/login")
def login_form(request: Request) -> HTMLResponse:
    _logs(request).start()  # a head start on the snapshot while someone signs in
    return _page(request, "login.html", None, error=None)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "").strip()
    service: Service = request.app.state.service
    if not token or service.tokens.check(token) is None:
        refused = _page(request, "login.html", None, error="Unknown token.")
        refused.status_code = 401
        return refused
    _logs(request).start()
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    await _form(request)
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


# ---------------------------------------------------------------- what it learned


def _rules(service: Service, viewer: Viewer, controls: list[Control]) -> pl.DataFrame:
    """The live set's rules this viewer may see, plus the rules people decided about that are no longer in it,
    with their ``status`` (live / disabled / pinned) as this viewer's scope sees it."""
    current = service.artifacts.current_dir()
    tables = RewriteTables.load(current) if current is not None else RewriteTables()
    frame = rule_frame(tables).with_columns(in_set=pl.lit(True))
    decided = [c.rule | {"rule_id": c.rule_id} for c in controls if c.rule_id not in set(frame["rule_id"])]
    if decided:
        schema = {k: v for k, v in frame.schema.items() if k != "in_set"}
        extra = pl.DataFrame([{k: d.get(k) for k in schema} for d in decided], schema=schema)
        extra = extra.with_columns(in_set=pl.lit(False))
        frame = pl.concat([frame, extra]).unique("rule_id", keep="first", maintain_order=True)
    users = list(viewer.users)
    frame = frame.filter((pl.col("kind") != "personal") | pl.col("user_id").is_in(users))
    scope = viewer.scope()
    off = {c.rule_id for c in controls if c.action == "disable" and c.home_id in (None, scope)}
    pinned = {c.rule_id for c in controls if c.action == "pin"}
    status = (
        pl.when(pl.col("rule_id").is_in(list(off)))
        .then(pl.lit("disabled"))
        .when(pl.col("rule_id").is_in(list(pinned)))
        .then(pl.lit("pinned"))
        .otherwise(pl.lit("live"))
    )
    return frame.with_columns(status=status).filter(pl.col("in_set") | (pl.col("status") != "live"))


def _evidence(snapshot: Snapshot, viewer: Viewer, rules: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per rule on the page: first/last seen and example turns of the viewer's own homes whose heard form is the
    rule's source (a personal rule: its user's turns only). Pattern rules match delexicalised forms: no examples."""
    out: dict[str, dict[str, Any]] = {}
    lexical = rules.filter(pl.col("kind") != "pattern")
    sources = lexical["source"].to_list()
    found = [f.filter(pl.col("form").is_in(sources)) for h, f in snapshot.heard.items() if h in viewer.homes]
    if not lexical.height or not found:
        return out
    hits = pl.concat(found)
    for rule in lexical.iter_rows(named=True):
        mine = hits.filter(pl.col("form") == rule["source"])
        if rule["kind"] == "personal":
            mine = mine.filter(pl.col("user_id") == rule["user_id"])
        if mine.height:
            out[rule["rule_id"]] = {
                "first": mine["ts"].min(),
                "last": mine["ts"].max(),
                "seen": mine.height,
                "examples": mine.sort("ts", descending=True).head(EXAMPLES).to_dicts(),
            }
    return out


@router.get("/")
def learned(
    request: Request, q: str = "", kind: str = "", status: str = "", shadow: str = "", sort: str = "", page: int = 1
) -> Response:
    """Every rule in force (global, pattern, personal) with its evidence, searchable, filterable, sortable,
    paginated; the artifact sets."""
    gate = _gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    service: Service = request.app.state.service
    controls = Controls(service.artifacts.root).all()
    rules = _rules(service, viewer, controls)
    if q:
        needle = q.lower()
        rules = rules.filter(
            pl.col("source").str.contains(needle, literal=True)
            | pl.col("target").str.contains(needle, literal=True)
            | pl.col("user_id").fill_null("").str.contains(needle, literal=True)
        )
    if kind:
        rules = rules.filter(pl.col("kind") == kind)
    if status:
        rules = rules.filter(pl.col("status") == status)
    if shadow in SHADOW_FILTERS:
        rules = rules.filter(SHADOW_FILTERS[shadow])
    rules = rules.sort(SORTS.get(sort, SORTS["support"]), descending=True, nulls_last=True)
    pages = max(1, math.ceil(rules.height / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = rules.slice((page - 1) * PAGE_SIZE, PAGE_SIZE)
    evidence = _evidence(snapshot, viewer, shown)
    preferences = {user: service.teacher.store.preferences(user) for user in viewer.users}
    query = {"q": q, "kind": kind, "status": status, "shadow": shadow, "sort": sort}
    return _page(
        request,
        "learned.html",
        viewer,
        rules=shown.to_dicts(),
        total=rules.height,
        evidence=evidence,
        page_no=page,
        pages=pages,
        query=query,
        link=lambda n: "/?" + urlencode(query | {"page": n}),
        versions=list(reversed(service.artifacts.versions())),
        preferences={u: p for u, p in preferences.items() if p},
        sorts=list(SORTS),
    )


def _rule_of(service: Service, viewer: Viewer, rule: str) -> dict[str, Any]:
    found = _rules(service, viewer, Controls(service.artifacts.root).all()).filter(pl.col("rule_id") == rule)
    if not found.height:
        raise HTTPException(404, f"no rule {rule!r} here")
    row = found.drop("in_set", "status").to_dicts()[0]
    return {k: v for k, v in row.items() if k != "rule_id"}


@router.post("/dashboard/rules/{rule}/{action}")
async def decide(request: Request, rule: str, action: str) -> Response:
    """disable / enable / pin / unpin one rule; the service's rewriter sees it on its next lookup."""
    viewer = _signed_in(request)
    await _form(request)
    service: Service = request.app.state.service
    if action not in ("disable", "enable", "pin", "unpin"):
        raise HTTPException(404, f"no action {action!r}")
    row = _rule_of(service, viewer, rule)
    personal = row["kind"] == "personal"
    if action in ("pin", "unpin") and not (personal or viewer.token.admin):
        raise HTTPException(403, "only an admin pins a rule every home shares")
    controls = Controls(service.artifacts.root)
    scope = None if personal else viewer.scope()
    if action in ("enable", "unpin"):
        controls.clear(rule, scope)
    else:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        verb: Action = "disable" if action == "disable" else "pin"
        controls.set(Control(rule, verb, scope, row, viewer.token.id, when))
    return _back(request)


@router.post("/dashboard/versions/{version}/rollback")
async def rollback(request: Request, version: str) -> Response:
    """Put an earlier artifact set back in service (every home shares the set: admin only)."""
    viewer = _signed_in(request)
    await _form(request)
    if not viewer.token.admin:
        raise HTTPException(403, "rolling back an artifact set needs an admin token")
    service: Service = request.app.state.service
    service.artifacts.rollback(version)
    reload = getattr(service.rewriter, "reload_if_changed", None)
    if reload is not None:
        reload()
    return _back(request)


# ---------------------------------------------------------------- trend, failures, people


def trend_figure(daily: pl.DataFrame, live_days: list[tuple[str, datetime]]) -> go.Figure:
    """Daily turn defect rate (signals; gold when the store has it) and rewrite rate, each artifact set's day."""
    rates = daily.select(
        "day",
        defect_rate=pl.col("defects") / pl.col("turns"),
        gold_defect_rate=pl.when(pl.col("gold_turns") > 0).then(pl.col("gold_defects") / pl.col("gold_turns")),
        rewrite_rate=pl.col("rewrites") / pl.col("turns"),
    )
    fig = go.Figure()
    lines = [("defect_rate", "defect rate (signals)"), ("rewrite_rate", "rewrite rate")]
    if rates["gold_defect_rate"].is_not_null().any():
        lines.insert(1, ("gold_defect_rate", "defect rate (gold)"))
    for column, name in lines:
        fig.add_trace(go.Scatter(x=rates["day"].to_list(), y=rates[column].to_list(), mode="lines+markers", name=name))
    for version, created in live_days:
        fig.add_vline(x=created.timestamp() * 1000, line_dash="dot", line_color="#888")
        fig.add_annotation(x=created, y=1, yref="paper", text=version.split("-")[0], showarrow=False, yshift=8)
    fig.update_layout(
        margin={"l": 40, "r": 10, "t": 30, "b": 40},
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
        height=380,
    )
    return fig


def _went_live(meta: dict[str, Any], created: str) -> datetime:
    """When a set went live on the logs' own clock: right after the last turn it learned from (a simulation's days
    are not the wall clock); the publish time for sets published before ``learn`` recorded it."""
    return datetime.fromisoformat(meta.get("logs_until") or created)


@router.get("/dashboard/trend")
def trend(request: Request) -> Response:
    gate = _gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    service: Service = request.app.state.service
    daily = (
        snapshot.daily.filter(pl.col("home_id").is_in(list(viewer.homes)))
        .group_by("day")
        .agg(pl.exclude("home_id").sum())
        .sort("day")
    )
    live = [(v.version, _went_live(v.meta, v.created)) for v in service.artifacts.versions() if v.created]
    figure = trend_figure(daily, live) if daily.height else None
    return _page(
        request,
        "trend.html",
        viewer,
        figure=figure.to_json().replace("</", "<\\/") if figure else None,
        turns=int(daily["turns"].sum()) if daily.height else 0,
    )


@router.get("/dashboard/failures")
def failures(request: Request) -> Response:
    """The utterance forms that fail most (by the signals) with example turns; the questions asked and answers."""
    gate = _gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    top = (
        snapshot.forms.filter(pl.col("home_id").is_in(list(viewer.homes)))
        .group_by("form")
        .agg(pl.col("failures", "turns", "users").sum(), pl.col("examples").explode())
        .sort(["failures", "turns"], descending=[True, False])
        .head(PAGE_SIZE)
        .to_dicts()
    )
    for row in top:  # one home's latest failing turns, or several homes' merged
        turns = [t for t in row["examples"] if t is not None]  # a home's empty list explodes to a null
        row["examples"] = sorted(turns, key=lambda t: t["ts"], reverse=True)[:EXAMPLES]
    answers = snapshot.answers.filter(pl.col("user_id").is_in(list(viewer.users)))
    return _page(
        request,
        "failures.html",
        viewer,
        forms=top,
        asked=sum(n for home, n in snapshot.asked.items() if home in viewer.homes),
        answers=answers.head(50).to_dicts(),
        answered=answers.height,
    )


@router.get("/dashboard/people")
def people(request: Request) -> Response:
    """Per person: what they taught (delete) and forgetting them."""
    gate = _gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    service: Service = request.app.state.service
    counts = snapshot.user_turns
    rules = _rules(service, viewer, Controls(service.artifacts.root).all()).filter(pl.col("kind") == "personal")
    rule_counts = dict(rules.group_by("user_id").len().iter_rows()) if rules.height else {}
    persons = [
        {
            "id": p.id,
            "name": p.name,
            "home": h.id,
            "turns": counts.get(p.id, 0),
            "rules": rule_counts.get(p.id, 0),
            "preferences": service.teacher.store.preferences(p.id),
        }
        for h in viewer.homes.values()
        for p in h.people
    ]
    return _page(request, "people.html", viewer, persons=persons)


@router.post("/dashboard/people/{user_id}/preferences/delete")
async def delete_preference(request: Request, user_id: str) -> Response:
    viewer = _signed_in(request)
    form = await _form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    service: Service = request.app.state.service
    service.teacher.store.delete_preferences(user_id, kind=form.get("kind") or None, key=form.get("key"))
    return _back(request, "/dashboard/people")


@router.post("/dashboard/people/{user_id}/preferences/edit")
async def edit_preference(request: Request, user_id: str) -> Response:
    """A new value for one taught preference (the same path as ``PATCH /v1/users/{id}/preferences``)."""
    viewer = _signed_in(request)
    form = await _form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    value = form.get("value", "").strip()
    if not value or len(value) > MAX_VALUE_CHARS:
        raise HTTPException(422, f"a preference's value is 1 to {MAX_VALUE_CHARS} characters")
    service: Service = request.app.state.service
    service.edit_preference(user_id, form.get("kind", ""), form.get("key", ""), form.get("scope", "*"), value)
    return _back(request, "/dashboard/people")


@router.post("/dashboard/people/{user_id}/forget")
async def forget(request: Request, user_id: str) -> Response:
    """Forget a person: the service's forget (turns, gold, feedback, preferences, personal rules)."""
    viewer = _signed_in(request)
    await _form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    service: Service = request.app.state.service
    service.forget(user_id)  # and from the snapshot (``Logs.forget``)
    return RedirectResponse("/dashboard/people", status_code=303)
