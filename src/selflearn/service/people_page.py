"""The dashboard's people page: per person, their turns, personal rules and taught preferences (edit, delete), and
forgetting them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from selflearn.controls import Controls
from selflearn.schema import MAX_VALUE_CHARS
from selflearn.service.pages import back, page_gate, read_form, render, signed_in
from selflearn.service.rules_page import visible_rules

if TYPE_CHECKING:
    from selflearn.service.service import Service

router = APIRouter(include_in_schema=False)


@router.get("/dashboard/people")
def people(request: Request) -> Response:
    """Per person: what they taught (delete) and forgetting them."""
    gate = page_gate(request)
    if isinstance(gate, Response):
        return gate
    viewer, snapshot = gate
    service: Service = request.app.state.service
    counts = snapshot.user_turns
    rules = visible_rules(service, viewer, Controls(service.artifacts.root).all()).filter(pl.col("kind") == "personal")
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
    return render(request, "people.html", viewer, persons=persons)


@router.post("/dashboard/people/{user_id}/preferences/delete")
async def delete_preference(request: Request, user_id: str) -> Response:
    viewer = signed_in(request)
    form = await read_form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    service: Service = request.app.state.service
    service.teacher.store.delete_preferences(user_id, kind=form.get("kind") or None, key=form.get("key"))
    return back(request, "/dashboard/people")


@router.post("/dashboard/people/{user_id}/preferences/edit")
async def edit_preference(request: Request, user_id: str) -> Response:
    """A new value for one taught preference (the same path as ``PATCH /v1/users/{id}/preferences``)."""
    viewer = signed_in(request)
    form = await read_form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    value = form.get("value", "").strip()
    if not value or len(value) > MAX_VALUE_CHARS:
        raise HTTPException(422, f"a preference's value is 1 to {MAX_VALUE_CHARS} characters")
    service: Service = request.app.state.service
    service.edit_preference(user_id, form.get("kind", ""), form.get("key", ""), form.get("scope", "*"), value)
    return back(request, "/dashboard/people")


@router.post("/dashboard/people/{user_id}/forget")
async def forget(request: Request, user_id: str) -> Response:
    """Forget a person: the service's forget (turns, gold, feedback, preferences, personal rules)."""
    viewer = signed_in(request)
    await read_form(request)
    if user_id not in viewer.users:
        raise HTTPException(404, f"no user {user_id!r} here")
    service: Service = request.app.state.service
    service.forget(user_id)  # and from the snapshot (``Logs.forget``)
    return RedirectResponse("/dashboard/people", status_code=303)
