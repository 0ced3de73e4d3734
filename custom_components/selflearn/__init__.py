"""selflearn as Home Assistant's conversation agent: it understands, HA acts, and HA's outcome goes back to learn.

The agent speaks Wyoming to the selflearn service exactly as HA's own Wyoming conversation entity does, then runs
the returned intents with HA's intent handlers on HA's entities, reports each turn's result (success, or the error
code of the intent that failed) back to selflearn, and hands what selflearn does not understand to HA's built-in
agent. Registered with ``conversation.async_set_agent`` (a config-entry agent), which HA 2024.3 to today accept.
"""

from __future__ import annotations

from homeassistant.components.conversation import async_set_agent, async_unset_agent
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .conversation import SelflearnAgent


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Make this entry's selflearn service a conversation agent (choose it in a voice assistant)."""
    async_set_agent(hass, entry, SelflearnAgent(hass, entry))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Remove the agent."""
    async_unset_agent(hass, entry)
    return True
