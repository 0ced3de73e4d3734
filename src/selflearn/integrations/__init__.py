"""Integrations with other systems: Home Assistant's conversation input and intents, the Wyoming protocol server.

They drive the one Runtime (no second pipeline) and log every request as a Turn, so real use feeds ``learn``.
"""
