"""Learners: each turns logs into a part of the artifact set."""
