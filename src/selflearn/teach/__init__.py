"""Teachable AI: statements people make, the preferences they leave, and the teacher that applies them."""
