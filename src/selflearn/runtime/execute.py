"""Execute: carry a resolved candidate out on the (simulated) device states and say what happened.

The outcome's status is the turn's ``result_status``. Requests the home cannot serve (a movie with no screen in
reach, a lawn mower that does not exist, an intent selflearn has no action for) are ``unsupported`` with a response
that says so, never a silent success.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selflearn.home import Device, Endpoint, Home
from selflearn.runtime.context import Candidate
from selflearn.runtime.resolve import Resolution
from selflearn.schema import ResultStatus

SCREENS = ("screen", "tv", "display")
WEATHER = ("sunny", "cloudy", "rainy", "windy", "foggy", "clear")


@dataclass
class Outcome:
    status: ResultStatus
    """How the request ended."""
    response: str
    """What the assistant says."""
    changed: list[str] = field(default_factory=list)
    """Device ids whose state changed."""


@dataclass
class World:
    """What execution reads and changes: device states plus the assistant's own timers and lists."""

    home: Home
    """The home acted in."""
    state: dict[str, dict[str, Any]]
    """Device id -> its state, changed in place."""
    timers: list[dict[str, Any]] = field(default_factory=list)
    """Running timers (name, duration, start)."""
    lists: dict[str, list[str]] = field(default_factory=dict)
    """List name -> its items (shopping, to-do)."""


def execute(cand: Candidate, res: Resolution, world: World, *, endpoint: Endpoint, now: datetime) -> Outcome:
    if res.status == "no_entity":
        what = res.missing or "that"
        return Outcome("no_entity", f"Sorry, I couldn't find {what} in this home.")
    handler = _HANDLERS.get(cand.intent)
    if handler is None:
        return Outcome("unsupported", f"Sorry, I can't do that here ({cand.intent}).")
    devices = [world.home.device(d) for d in res.devices]
    return handler(_Call(cand, devices, world, endpoint, now))


@dataclass
class _Call:
    cand: Candidate
    devices: list[Device]
    world: World
    endpoint: Endpoint
    now: datetime

    @property
    def slots(self) -> dict[str, Any]:
        return self.cand.slots

    def set(self, device: Device, **values: Any) -> None:
        self.world.state.setdefault(device.id, dict(device.state)).update(values)

    def get(self, device: Device) -> dict[str, Any]:
        return self.world.state.setdefault(device.id, dict(device.state))

    def media_players(self, video: bool = False) -> list[Device]:
        """Media players near the speaker (its area first), optionally only those that show video."""
        players = [d for d in self.world.home.devices if d.domain == "media_player"]
        if video:
            players = [d for d in players if "video" in d.capabilities]
        return sorted(players, key=lambda d: d.area != self.endpoint.area)


def _names(devices: list[Device]) -> str:
    names = [d.name for d in devices]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _power(on: bool) -> Callable[[_Call], Outcome]:
    def run(call: _Call) -> Outcome:
        if not call.devices:
            return Outcome("no_entity", "Sorry, which device do you mean?")
        for d in call.devices:
            if d.domain == "cover":
                call.set(d, position=100 if on else 0)
            elif d.domain == "lock":
                call.set(d, locked=on)
            elif d.domain in ("sensor", "binary_sensor", "todo"):
                return Outcome("unsupported", f"The {d.name} can't be switched.")
            else:
                call.set(d, power=on)
        verbs = {"cover": ("Opened", "Closed"), "lock": ("Locked", "Unlocked")}
        first = verbs.get(call.devices[0].domain, ("Turned on", "Turned off"))[0 if on else 1]
        return Outcome("success", f"{first} the {_names(call.devices)}.", [d.id for d in call.devices])

    return run


def _light_set(call: _Call) -> Outcome:
    lights = [d for d in call.devices if d.domain == "light"]
    if not lights:
        return Outcome("no_entity", "Sorry, there is no light like that here.")
    values: dict[str, Any] = {}
    if "brightness" in call.slots:
        values.update(power=int(call.slots["brightness"]) > 0, brightness=int(call.slots["brightness"]))
    if "color" in call.slots:
        values.update(power=True, color=str(call.slots["color"]))
    for d in lights:
        call.set(d, **values)
    return Outcome("success", f"Set the {_names(lights)}.", [d.id for d in lights])


def _position(call: _Call) -> Outcome:
    covers = [d for d in call.devices if d.domain in ("cover", "valve")]
    if not covers:
        return Outcome("no_entity", "Sorry, there is nothing to open or close like that.")
    for d in covers:
        call.set(d, position=int(call.slots.get("position", 100)))
    return Outcome(
        "success", f"Set the {_names(covers)} to {call.slots.get('position', 100)}%.", [d.id for d in covers]
    )


def _climate_set(call: _Call) -> Outcome:
    anywhere = sorted(
        (d for d in call.world.home.devices if d.domain == "climate"), key=lambda d: d.area != call.endpoint.area
    )
    targets = [d for d in call.devices if d.domain == "climate"] or anywhere[:1]
    if not targets:
        return Outcome("unsupported", "There is no thermostat in this home.")
    for d in targets:
        call.set(d, target_temperature=call.slots.get("temperature"))
    return Outcome(
        "success", f"Set the {_names(targets)} to {call.slots.get('temperature')} degrees.", [d.id for d in targets]
    )


def _fan_speed(call: _Call) -> Outcome:
    fans = [d for d in call.devices if d.domain == "fan"] or [d for d in call.world.home.devices if d.domain == "fan"]
    if not fans:
        return Outcome("unsupported", "There is no fan in this home.")
    for d in fans:
        speed = int(call.slots.get("fan_speed", 50))
        call.set(d, power=speed > 0, percentage=speed)
    return Outcome("success", f"Set the {_names(fans)} speed.", [d.id for d in fans])


def _get_state(call: _Call) -> Outcome:
    if not call.devices:
        return Outcome("no_entity", "Sorry, which device do you mean?")
    parts = []
    for d in call.devices[:3]:
        state = call.get(d)
        if "power" in state:
            parts.append(f"the {d.name} is {'on' if state['power'] else 'off'}")
        elif "position" in state:
            parts.append(f"the {d.name} is {'open' if state['position'] else 'closed'}")
        elif "locked" in state:
            parts.append(f"the {d.name} is {'locked' if state['locked'] else 'unlocked'}")
        else:
            parts.append(f"the {d.name} is {state}")
    text = "; ".join(parts)
    return Outcome("success", text[0].upper() + text[1:] + ".")


def _device_temperature(call: _Call) -> Outcome:
    if not call.devices:
        return Outcome("unsupported", "Nothing in this home reports a temperature.")
    d = call.devices[0]
    temp = call.get(d).get("temperature")
    if temp is None:
        return Outcome("unsupported", f"The {d.name} doesn't report a temperature.")
    return Outcome("success", f"The {d.name} is at {temp} degrees.")


def _media(call: _Call) -> Outcome:
    players = call.media_players()
    near = [d for d in players if d.area == call.endpoint.area]
    if not near and call.endpoint.type not in SCREENS and call.endpoint.type != "speaker":
        return Outcome("unsupported", "There is nothing playing media here.")
    for d in near:
        if call.cand.intent == "HassMediaPause":
            call.set(d, playing=None)
    return Outcome("success", "OK.", [d.id for d in near])


def _play(call: _Call) -> Outcome:
    media = call.slots.get("media_type", "music")
    what = call.slots.get("title") or call.slots.get("artist") or call.slots.get("genre") or "music"
    screen = call.endpoint.type in SCREENS
    if media == "movie":
        players = call.media_players(video=True)
        target = next((d for d in players if d.area == call.endpoint.area), None)
        if target is None and not screen:
            return Outcome("unsupported", f"There's no screen here to play the movie {what}.")
    else:
        target = next((d for d in call.media_players() if d.area == call.endpoint.area), None)
    label = {"movie": "the movie", "audiobook": "the audiobook", "podcast": "the podcast"}.get(media, "")
    where = target.name if target else call.endpoint.name or "here"
    if target is not None:
        call.set(target, power=True, playing=f"{media}:{what}")
    return Outcome(
        "success", f"Playing {label + ' ' if label else ''}{what} on the {where}.", [target.id] if target else []
    )


def _start_program(call: _Call) -> Outcome:
    if not call.devices:
        return Outcome("unsupported", "There is no appliance here that can do that.")
    d = call.devices[0]
    program = call.slots.get("program")
    if program == "preheat":
        target = int(call.slots.get("temperature", 180))
        call.set(d, power=True, target_temperature=target)
        return Outcome("success", f"Preheating the {d.name} to {target} degrees.", [d.id])
    if program == "clean":
        call.set(d, cleaning=True)
        return Outcome("success", f"Started the {d.name}.", [d.id])
    call.set(d, power=True, program=program)
    doing = {"brew": "brewing"}.get(str(program), "the program")
    return Outcome("success", f"Started {doing} on the {d.name}.", [d.id])


def _vacuum(start: bool) -> Callable[[_Call], Outcome]:
    def run(call: _Call) -> Outcome:
        vacuums = [d for d in call.world.home.devices if d.domain == "vacuum"]
        if not vacuums:
            return Outcome("unsupported", "There is no vacuum in this home.")
        for d in vacuums:
            call.set(d, cleaning=start)
        return Outcome(
            "success", f"{'Started' if start else 'Sent home'} the {_names(vacuums)}.", [d.id for d in vacuums]
        )

    return run


def _weather(call: _Call) -> Outcome:
    city = call.slots.get("city") or call.world.home.city or "your area"
    digest = int(hashlib.sha256(f"{city}{call.now.date()}".encode()).hexdigest(), 16)
    return Outcome("success", f"In {city} it's {WEATHER[digest % len(WEATHER)]}, {10 + digest % 20} degrees.")


def _timer(call: _Call) -> Outcome:
    intent = call.cand.intent
    if intent == "HassStartTimer":
        call.world.timers.append({**call.slots, "started": call.now.isoformat()})
        return Outcome("success", "Timer started.")
    if not call.world.timers:
        return Outcome("no_entity", "There are no timers running.")
    if intent in ("HassCancelTimer", "HassCancelAllTimers"):
        call.world.timers.clear()
        return Outcome("success", "Timer cancelled.")
    return Outcome("success", f"You have {len(call.world.timers)} timer(s) running.")


def _list_add(call: _Call) -> Outcome:
    item = str(call.slots.get("shopping_list_item") or call.slots.get("todo_list_item") or call.slots.get("item", ""))
    name = str(call.slots.get("name") or "shopping list")
    call.world.lists.setdefault(name, []).append(item)
    return Outcome("success", f"Added {item} to your {name}.")


def _list_done(call: _Call) -> Outcome:
    item = str(call.slots.get("shopping_list_item") or call.slots.get("todo_list_item") or call.slots.get("item", ""))
    for items in call.world.lists.values():
        if item in items:
            items.remove(item)
            return Outcome("success", f"Checked off {item}.")
    return Outcome("no_entity", f"{item} isn't on your list.")


def _restaurant(call: _Call) -> Outcome:
    cuisine = call.slots.get("cuisine")
    near = call.world.home.city or "you"
    if cuisine:
        return Outcome("success", f"Here are {cuisine} restaurants near {near}, best rated first.")
    return Outcome("success", f"Here are restaurants near {near}.")


def _game(call: _Call) -> Outcome:
    team = call.slots.get("team")
    if team is None:
        return Outcome("no_entity", "Which team's game would you like?")
    screens = call.media_players(video=True)
    if not screens and call.endpoint.type not in SCREENS:
        return Outcome("success", f"The {team} game is on; here's the radio commentary.")
    if screens:
        call.set(screens[0], power=True, playing=f"game:{team}")
    return Outcome("success", f"Putting on the {team} game.", [screens[0].id] if screens else [])


def _time(call: _Call) -> Outcome:
    if call.cand.intent == "HassGetCurrentDate":
        return Outcome("success", f"Today is {call.now:%A, %B %d}.")
    return Outcome("success", f"It's {call.now:%H:%M}.")


def _say(text: str, status: ResultStatus = "success") -> Callable[[_Call], Outcome]:
    return lambda call: Outcome(status, text)


_HANDLERS: dict[str, Callable[[_Call], Outcome]] = {
    "HassTurnOn": _power(True),
    "HassTurnOff": _power(False),
    "HassLightSet": _light_set,
    "HassSetPosition": _position,
    "HassClimateSetTemperature": _climate_set,
    "HassFanSetSpeed": _fan_speed,
    "HassGetState": _get_state,
    "GetDeviceState": _device_temperature,
    "HassMediaPause": _media,
    "HassMediaUnpause": _media,
    "HassMediaNext": _media,
    "HassMediaPrevious": _media,
    "HassSetVolume": _media,
    "HassSetVolumeRelative": _media,
    "HassMediaPlayerMute": _media,
    "HassMediaPlayerUnmute": _media,
    "PlayMedia": _play,
    "StartProgram": _start_program,
    "HassVacuumStart": _vacuum(True),
    "HassVacuumReturnToBase": _vacuum(False),
    "HassGetWeather": _weather,
    "WeatherIn": _weather,
    "HassStartTimer": _timer,
    "HassCancelTimer": _timer,
    "HassCancelAllTimers": _timer,
    "HassTimerStatus": _timer,
    "HassPauseTimer": _timer,
    "HassUnpauseTimer": _timer,
    "HassIncreaseTimer": _timer,
    "HassDecreaseTimer": _timer,
    "HassShoppingListAddItem": _list_add,
    "HassListAddItem": _list_add,
    "HassShoppingListCompleteItem": _list_done,
    "HassListCompleteItem": _list_done,
    "HassListRemoveItem": _list_done,
    "FindRestaurant": _restaurant,
    "WatchGame": _game,
    "HassGetCurrentTime": _time,
    "HassGetCurrentDate": _time,
    "HassNevermind": _say("OK, never mind."),
    "HassBroadcast": _say("Broadcasting your message."),
    "HassRespond": _say("OK."),
}
