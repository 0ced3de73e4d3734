"""Learners: what ``selflearn learn`` fits from the logs and publishes as artifacts."""
