"""The loop's HTML report: one self-contained file (plotly inlined) with the daily defect curve, the defects by
failure point, how often rewriting fired, and a table of the same numbers, so it opens offline anywhere."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go

from selflearn.sim.loop import FAILURE_POINTS, DayStats


def defect_figure(days: Sequence[DayStats], control: Sequence[DayStats] = ()) -> go.Figure:
    x = [d.day for d in days]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[d.defect_rate for d in days], mode="lines+markers", name="defect rate (turns)"))
    if control:
        fig.add_trace(
            go.Scatter(
                x=[d.day for d in control],
                y=[d.defect_rate for d in control],
                mode="lines+markers",
                line_dash="dash",
                name="same days, nothing learned",
            )
        )
    fig.add_trace(go.Scatter(x=x, y=[1 - d.goal_success for d in days], mode="lines+markers", name="failed goals"))
    fig.add_trace(go.Bar(x=x, y=[d.rewrite_rate for d in days], name="turns rewritten", opacity=0.35))
    fig.update_layout(
        title="Defects per day (the assistant learns each night)",
        xaxis_title="day",
        yaxis_title="share",
        yaxis_tickformat=".0%",
        template="plotly_white",
        legend_orientation="h",
    )
    return fig


def failure_point_figure(days: Sequence[DayStats]) -> go.Figure:
    x = [d.day for d in days]
    fig = go.Figure()
    for point in FAILURE_POINTS:
        fig.add_trace(go.Bar(x=x, y=[d.by_failure_point.get(point, 0.0) for d in days], name=point))
    fig.update_layout(
        barmode="stack",
        title="Defective turns by failure point (gold; evaluation only)",
        xaxis_title="day",
        yaxis_title="share of turns",
        yaxis_tickformat=".0%",
        template="plotly_white",
        legend_orientation="h",
    )
    return fig


def table_html(days: Sequence[DayStats], control: Sequence[DayStats] = ()) -> str:
    base = {d.day: d.defect_rate for d in control}
    head = [
        "day",
        "turns",
        "defect rate",
        "nothing learned",
        *FAILURE_POINTS,
        "goal success",
        "rewritten",
        "rules (global/personal)",
        "artifacts",
    ]
    rows = []
    for d in days:
        cells = [
            str(d.day),
            str(d.turns),
            f"{d.defect_rate:.1%}",
            f"{base[d.day]:.1%}" if d.day in base else "-",
            *(f"{d.by_failure_point.get(p, 0.0):.1%}" for p in FAILURE_POINTS),
            f"{d.goal_success:.1%}",
            f"{d.rewrite_rate:.1%}",
            f"{d.rules_global}/{d.rules_personal}",
            d.artifact_version or "-",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f4f4f4}"
)


def write_report(
    days: Sequence[DayStats],
    path: Path,
    *,
    control: Sequence[DayStats] = (),
    title: str = "selflearn demo",
    notes: Sequence[str] = (),
) -> Path:
    """Write the report (``control``: the same days with nothing learned, drawn dashed and tabled beside);
    the first figure carries plotly.js inline so the file needs no network."""
    figures = [defect_figure(days, control), failure_point_figure(days)]
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{notes_html}"
        f"{''.join(parts)}<h2>Numbers</h2>{table_html(days, control)}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path


def demo_cells(day: DayStats, control: DayStats) -> list[str]:
    """One row of ``selflearn demo``'s table: % of the day's turns (defects, the control's, per failure point), %
    of goals met, % rewritten."""
    return [
        str(day.day),
        f"{day.turns:,}",
        f"{100 * day.defect_rate:.1f}",
        f"{100 * control.defect_rate:.1f}",
        *(f"{100 * day.by_failure_point[p]:.1f}" for p in FAILURE_POINTS),
        f"{100 * day.goal_success:.1f}",
        f"{100 * day.rewrite_rate:.1f}",
    ]
