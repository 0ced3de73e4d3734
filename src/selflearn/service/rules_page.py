"""The dashboard's rule pages: every rule in force with its evidence (searchable, sortable, paginated), and the
actions on them: disable, enable, pin or unpin a rule, roll back an artifact set."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from selflearn.controls import Action, Control, Controls, rule_frame
from selflearn.learners.mining import RewriteTables
from selflearn.service.pages import PAGE_SIZE, Viewer, back, page_gate, read_form, render, signed_in
from selflearn.service.snapshot import EXAMPLES, Snapshot

if TYPE_CHECKING:
    from selflearn.service.service import Service

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

router = APIRouter(include_in_schema=False)


def visible_rules(service: Service, viewer: Viewer, controls: list[Control]) -> pl.DataFrame:
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
    gate = page_gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    service: Service = request.app.state.service
    controls = Controls(service.artifacts.root).all()
    rules = visible_rules(service, viewer, controls)
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
    return render(
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
    found = visible_rules(service, viewer, Controls(service.artifacts.root).all()).filter(pl.col("rule_id") == rule)
    if not found.height:
        raise HTTPException(404, f"no rule {rule!r} here")
    row = found.drop("in_set", "status").to_dicts()[0]
    return {k: v for k, v in row.items() if k != "rule_id"}


@router.post("/dashboard/rules/{rule}/{action}")
async def decide(request: Request, rule: str, action: str) -> Response:
    """disable / enable / pin / unpin one rule; the service's rewriter sees it on its next lookup."""
    viewer = signed_in(request)
    await read_form(request)
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
    return back(request)


@router.post("/dashboard/versions/{version}/rollback")
async def rollback(request: Request, version: str) -> Response:
    """Put an earlier artifact set back in service (every home shares the set: admin only)."""
    viewer = signed_in(request)
    await read_form(request)
    if not viewer.token.admin:
        raise HTTPException(403, "rolling back an artifact set needs an admin token")
    service: Service = request.app.state.service
    service.artifacts.rollback(version)
    reload = getattr(service.rewriter, "reload_if_changed", None)
    if reload is not None:
        reload()
    return back(request)
