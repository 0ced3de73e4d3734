"""Automated ground truth: a dialogue model that labels turns (goal segmentation, goal success, intent, slots)."""
