"""The dashboard's trend figure (plotly): daily defect and rewrite rates with the day each artifact set went live."""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go
import polars as pl


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
