"""Delexicalised forms: a home's names -> typed placeholders and back."""

from __future__ import annotations

from selflearn.home import Area, Device, Endpoint, Home
from selflearn.runtime.patterns import Delexicaliser, fill, only_devices, own_device_word, placeholders, typed_names


def small_home(hid: str, room: str, lamp: str, city: str = "salem") -> Home:
    return Home(
        id=hid,
        city=city,
        areas=[Area(id="a1", name=room, aliases=[f"the {room} room"]), Area(id="a2", name="kitchen")],
        devices=[
            Device(id="light.a1", name=lamp, domain="light", area="a1", aliases=[f"{room} lamp"]),
            Device(id="lock.front", name="front door", domain="lock", area="a1"),
            Device(id="media_player.tv", name="telly", domain="media_player", area="a1"),
        ],
        endpoints=[Endpoint(id="spk", type="speaker", area="a1")],
    )


def test_names_become_typed_placeholders_longest_first() -> None:
    d = Delexicaliser.for_home(small_home("h", "lounge", "floor lamp"))
    assert d.apply("turn off the lounge lamp") == ("turn off the _light_", {"_light_": "lounge lamp"})
    assert d.apply("lights out in the lounge please") == ("lights out in the _area_ please", {"_area_": "lounge"})
    assert d.apply("weather in salem") == ("weather in _city_", {"_city_": "salem"})
    assert d.apply("dim the kitchen to 40") == ("dim the _area_ to _number_", {"_area_": "kitchen", "_number_": "40"})
    assert d.apply("kitchen or lounge")[0] == "_area_ or _area2_"
    assert d.apply("loungeroom on")[0] == "loungeroom on"  # whole words only


def test_two_homes_share_one_pattern_and_fill_puts_each_homes_name_back() -> None:
    a = Delexicaliser.for_home(small_home("a", "lounge", "floor lamp"))
    b = Delexicaliser.for_home(small_home("b", "den", "reading light"))
    pa, va = a.apply("kill the floor lamp")
    pb, vb = b.apply("kill the reading light")
    assert pa == pb == "kill the _light_"
    assert fill("turn off the _light_", va) == "turn off the floor lamp"
    assert fill("turn off the _light_", vb) == "turn off the reading light"
    assert fill("turn off the _area_ lights", va) is None  # the utterance named no room
    assert placeholders("set _area_ to _number_") == ["_area_", "_number_"]


def test_typed_names_cover_devices_areas_aliases_and_towns() -> None:
    names = dict(typed_names(small_home("h", "lounge", "floor lamp", city="Wilkerson, CA")))
    assert names["floor lamp"] == "light" and names["lounge lamp"] == "light"
    assert names["the lounge room"] == "area" and names["kitchen"] == "area"
    assert names["wilkerson ca"] == "city" and names["wilkerson"] == "town"
    d = Delexicaliser.for_home(small_home("h", "lounge", "floor lamp", city="Wilkerson, CA"))
    pattern, values = d.apply("weather in wilkerson")
    assert pattern == "weather in _town_" and fill("weather in _city_", values) is None


def test_tastes_from_the_nlu_lists_pool_too() -> None:
    d = Delexicaliser.for_home(small_home("h", "lounge", "floor lamp"))
    assert d.apply("throw on some jazz") == ("throw on some _genre_", {"_genre_": "jazz"})
    assert d.apply("i'm craving thai")[0] == "i'm craving _cuisine_"
    assert d.apply("red sox game please")[0] == "_team_ game please"


def test_device_placeholders_are_typed_by_domain_so_a_light_rule_never_names_a_lock() -> None:
    d = Delexicaliser.for_home(small_home("h", "lounge", "floor lamp"))
    pattern, values = d.apply("unlock the front door")
    assert pattern == "unlock the _lock_" and values == {"_lock_": "front door"}
    assert d.apply("pause the telly")[0] == "pause the _media_player_"
    assert placeholders("pause the _media_player_ in the _area_") == ["_media_player_", "_area_"]
    assert fill("turn off the _light_", values) is None  # a light rule has nothing to fill from a lock
    pattern, values = d.apply("floor lamp and front door")
    assert pattern == "_light_ and _lock_" and fill("_lock_ then _light_", values) == "front door then floor lamp"


def test_own_device_word_is_one_swap_of_unnamed_words_for_one_device() -> None:
    assert own_device_word("start the hoover", "start the _vacuum_") == "vacuum"
    assert own_device_word("turn on the idiot box", "turn on the _media_player_") == "media_player"
    assert own_device_word("switch on the tube", "turn on the _media_player_") is None  # the request changed too
    assert own_device_word("set the _area_ brightness to _number_", "close the _cover_") is None  # names something
    assert own_device_word("play music", "play _genre_ music") is None  # a taste, not a device
    assert own_device_word("start the hoover", "start the _vacuum_ in the _area_") is None
    assert own_device_word("lights out please", "turn off the _area_ lights") is None


def test_only_devices_names_a_domain_only_when_the_home_has_one_of_it() -> None:
    home = small_home("h", "lounge", "floor lamp")
    assert only_devices(home) == {"_light_": "floor lamp", "_lock_": "front door", "_media_player_": "telly"}
    two = home.model_copy(update={"devices": [*home.devices, home.devices[0].model_copy(update={"id": "light.b"})]})
    assert "_light_" not in only_devices(two)
