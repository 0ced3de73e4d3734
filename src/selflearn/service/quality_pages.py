"""The dashboard's quality pages: the daily defect and rewrite trend, and the forms that fail most with their
latest failing turns beside the questions asked and the answers given."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import Response

from selflearn.service.pages import PAGE_SIZE, page_gate, render
from selflearn.service.snapshot import EXAMPLES
from selflearn.service.trend import trend_figure

if TYPE_CHECKING:
    from selflearn.service.service import Service

router = APIRouter(include_in_schema=False)


def _went_live(meta: dict[str, Any], created: str) -> datetime:
    """When a set went live on the logs' own clock: right after the last turn it learned from (a simulation's days
    are not the wall clock); the publish time for sets published before ``learn`` recorded it."""
    return datetime.fromisoformat(meta.get("logs_until") or created)


@router.get("/dashboard/trend")
def trend(request: Request) -> Response:
    gate = page_gate(request)
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
    return render(
        request,
        "trend.html",
        viewer,
        figure=figure.to_json().replace("</", "<\\/") if figure else None,
        turns=int(daily["turns"].sum()) if daily.height else 0,
    )


@router.get("/dashboard/failures")
def failures(request: Request) -> Response:
    """The utterance forms that fail most (by the signals) with example turns; the questions asked and answers."""
    gate = page_gate(request)
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
    return render(
        request,
        "failures.html",
        viewer,
        forms=top,
        asked=sum(n for home, n in snapshot.asked.items() if home in viewer.homes),
        answers=answers.head(50).to_dicts(),
        answered=answers.height,
    )
