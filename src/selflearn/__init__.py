"""selflearn: a voice assistant that learns from its own interactions, without human labels or NLU retraining."""

from importlib.metadata import version as _version

__version__ = _version("selflearn")
