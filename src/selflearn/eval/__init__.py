"""Evaluation against the simulator's gold (never imported by learners or the runtime)."""
