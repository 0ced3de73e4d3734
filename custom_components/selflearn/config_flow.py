"""Config flow: the host and port of the selflearn service, checked with Wyoming's ``describe``."""

from __future__ import annotations

import asyncio
from typing import Any

import voluptuous as vol
from homeassistant import config_entries
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.data_entry_flow import FlowResult
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from .const import DEFAULT_HOST, DEFAULT_PORT, DOMAIN, PROGRAM, TIMEOUT_SECONDS

SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST, default=DEFAULT_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): vol.All(int, vol.Range(min=1, max=65535)),
    }
)


async def intent_programs(host: str, port: int) -> list[dict[str, Any]] | None:
    """The intent programs the service's ``describe`` names (raw, so any wyoming version reads them); None when it
    cannot be reached or does not answer."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), AsyncTcpClient(host, port) as client:
            await client.write_event(Describe().event())
            while (event := await client.read_event()) is not None:
                if Info.is_type(event.type):
                    return [p for p in event.data.get("intent") or [] if isinstance(p, dict)]
    except (OSError, TimeoutError):
        return None
    return None


class SelflearnConfigFlow(config_entries.ConfigFlow, domain=DOMAIN):
    """One entry per selflearn service (host and port)."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        """Ask for host and port; accept only a service whose ``describe`` names selflearn's intent program."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port = user_input[CONF_HOST], user_input[CONF_PORT]
            await self.async_set_unique_id(f"{host}:{port}")
            self._abort_if_unique_id_configured()
            programs = await intent_programs(host, port)
            if programs is None:
                errors["base"] = "cannot_connect"
            elif not any(p.get("name") == PROGRAM and p.get("installed") for p in programs):
                errors["base"] = "not_selflearn"
            else:
                return self.async_create_entry(title=f"selflearn ({host}:{port})", data=user_input)
        schema = self.add_suggested_values_to_schema(SCHEMA, user_input) if user_input else SCHEMA
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)
