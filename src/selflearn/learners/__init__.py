"""Learners: logs in, artifacts out (the contract is ``learners.base``)."""
