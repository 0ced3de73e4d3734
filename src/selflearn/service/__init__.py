"""The FastAPI service: interpret/learn/teach/feedback API, tokens and the dashboard."""
