"""The Wyoming intent service, spoken to over TCP exactly as Home Assistant's Wyoming conversation entity does."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, IntentsStart, IntentsStop, NotRecognized

from selflearn.home import find_home
from selflearn.integrations.wyoming import RECORDED, RESULT, WyomingAgent, serve
from selflearn.learners.signals import DefectSignals
from selflearn.service.service import Service
from selflearn.store.logstore import Store

OVERSIZED_TEXT = json.dumps({"type": "transcript", "data": {"text": "turn on the light " * 60}}).encode() + b"\n"
SATELLITE = {"conversation_id": "01JD8ZKX1ZQ4G3M6V2N5T7W9YA", "satellite_id": "ep.kitchen_speaker", "device_id": "9f8e"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    home = find_home("maple_house")
    svc = Service(
        [home], db=tmp_path / "db.duckdb", artifacts=tmp_path / "artifacts", pending_root=tmp_path / "pending"
    )
    yield svc
    svc.close()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_with_server(service: Service, body: Callable[[int], Awaitable[Any]]) -> Any:
    """Start the server on a free loopback port, run ``body(port)``, stop the server."""

    async def main() -> Any:
        port = _port()
        started = asyncio.Event()
        agent = WyomingAgent(service, service.runtimes["maple_house"].home)
        task = asyncio.create_task(serve(f"tcp://127.0.0.1:{port}", agent, started))
        await asyncio.wait_for(started.wait(), 10)
        try:
            return await asyncio.wait_for(body(port), 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(main())


async def ha_process(port: int, text: str, context: dict[str, Any] = SATELLITE) -> list[Event]:
    """What HA's ``WyomingConversationEntity._async_process`` does: one connection, one transcript, read until an
    answer ends the exchange (a lone intent, intents-stop, not-recognized, handled or error)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(text, context=context, language="en").event())
        events: list[Event] = []
        in_list = False
        while True:
            event = await client.read_event()
            assert event is not None, "connection lost"
            events.append(event)
            if IntentsStart.is_type(event.type):
                in_list = True
            elif not (Intent.is_type(event.type) and in_list):  # a lone intent or any other answer ends it
                return events


def test_describe_names_an_installed_intent_program(service: Service) -> None:
    async def body(port: int) -> Event | None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return await client.read_event()

    event = run_with_server(service, body)
    assert event is not None and Info.is_type(event.type)
    program = Info.from_event(event).intent[0]
    assert (program.name, program.installed) == ("selflearn", True)
    assert program.models[0].languages == ["en"] and program.models[0].installed


def test_transcript_in_has_order_gets_the_intent_and_the_turn_is_logged(service: Service) -> None:
    events = run_with_server(service, lambda port: ha_process(port, "turn on the kitchen light"))
    assert [e.type for e in events] == ["intent"]
    intent = Intent.from_event(events[0])
    assert intent.name == "HassTurnOn"
    assert {e.name: e.value for e in intent.entities} == {"name": "Kitchen Light"}
    assert intent.text == "Turned on the Kitchen Light."
    service.flush()
    turns = service.store.logs().turns()
    row = turns.row(0, named=True)
    assert turns.height == 1
    assert (row["user_id"], row["device_id"], row["area"]) == (
        "maple_house.household.ep.kitchen_speaker", "ep.kitchen_speaker", "kitchen"
    )  # fmt: skip
    assert (row["asr_confidence"], row["session_id"]) == (None, SATELLITE["conversation_id"])


def test_a_rephrase_after_not_recognized_is_linked_and_signalled(service: Service) -> None:
    async def body(port: int) -> tuple[list[Event], list[Event]]:
        first = await ha_process(port, "kitchen light go bright now")
        return first, await ha_process(port, "turn on the kitchen light")

    first, second = run_with_server(service, body)
    assert NotRecognized.is_type(first[0].type) and Intent.is_type(second[0].type)
    service.flush()
    scored = DefectSignals().score(service.store.logs()).sort("ts")
    assert scored["dialogue_id"].n_unique() == 1
    assert scored["rephrased"].to_list() == [True, False]
    assert scored["next_turn_id"][0] == scored["turn_id"][1]


async def report(port: int, text: str, result: dict[str, Any]) -> tuple[Intent, Event]:
    """What selflearn's HA integration does: a transcript, its intent run by HA, then ``intent-result`` with the
    intent's ``context.turn_id`` on the same connection."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(text, context=SATELLITE, language="en").event())
        event = await client.read_event()
        assert event is not None and Intent.is_type(event.type)
        intent = Intent.from_event(event)
        assert intent.context is not None
        await client.write_event(Event(RESULT, {"turn_id": intent.context["turn_id"], **result}))
        answer = await client.read_event()
        assert answer is not None
        return intent, answer


def test_a_result_failure_reported_by_ha_makes_the_turn_failed_and_a_signal(service: Service) -> None:
    async def body(port: int) -> tuple[tuple[Intent, Event], tuple[Intent, Event]]:
        ok = await report(port, "turn on the kitchen light", {"success": True, "speech": "Turned on the light"})
        failed = {"success": False, "error_code": "no_valid_targets", "speech": "No device named Desk Lamp"}
        return ok, await report(port, "turn on the desk lamp", failed)

    (ok, ok_answer), (failed, failed_answer) = run_with_server(service, body)
    assert (ok.name, failed.name) == ("HassTurnOn", "HassTurnOn")
    assert ok_answer.type == failed_answer.type == RECORDED
    assert (ok_answer.data["result_status"], failed_answer.data["result_status"]) == ("success", "failed")
    service.flush()
    turns = service.store.logs().turns().sort("ts")
    assert turns["result_status"].to_list() == ["success", "failed"]
    assert turns["response_text"][1] == "No device named Desk Lamp"
    traces = [json.loads(t)["ha_result"] for t in turns["trace"]]
    assert traces == [{"success": True, "error_code": None}, {"success": False, "error_code": "no_valid_targets"}]
    scored = DefectSignals().score(service.store.logs()).sort("ts")
    assert scored["no_result"].to_list() == [False, True]


def test_a_result_for_a_stored_turn_is_recorded_and_bad_reports_are_refused(service: Service) -> None:
    async def body(port: int) -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcript("turn on the kitchen light", context=SATELLITE).event())
            event = await client.read_event()
            assert event is not None
            turn_id = Intent.from_event(event).context["turn_id"]  # type: ignore[index]
        service.flush()  # the report arrives after the turn was written: the stored row is updated
        answers = []
        for data in (
            {"turn_id": turn_id, "success": False, "error_code": "failed_to_handle"},
            {"turn_id": turn_id, "success": True},  # reported already
            {"turn_id": "no-such-turn", "success": True},
            {"turn_id": turn_id, "success": "maybe"},
            {"turn_id": turn_id, "success": False, "error_code": "../../etc"},
        ):
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Event(RESULT, data))
                answer = await client.read_event()
                assert answer is not None
                answers.append(answer)
        return answers

    answers = run_with_server(service, body)
    assert [a.type for a in answers] == [RECORDED, "error", "error", "error", "error"]
    assert {Error.from_event(a).code for a in answers[1:]} == {"bad-result"}
    assert "no turn 'no-such-turn'" in Error.from_event(answers[2]).text
    service.flush()
    (row,) = service.store.logs().turns().iter_rows(named=True)
    assert row["result_status"] == "failed"
    assert json.loads(row["trace"])["ha_result"] == {"success": False, "error_code": "failed_to_handle"}


def test_unplaced_satellites_are_separate_household_users_without_room_context(service: Service) -> None:
    async def body(port: int) -> list[list[Event]]:
        return [
            await ha_process(port, "play some jazz", {"conversation_id": "c1", "satellite_id": "assist_satellite.a"}),
            await ha_process(port, "play some jazz", {"conversation_id": "c2", "device_id": "../../etc"}),
        ]

    answers = run_with_server(service, body)
    for events in answers:
        intent = Intent.from_event(events[0])
        assert intent.name == "HassMediaSearchAndPlay"
        assert {e.name: e.value for e in intent.entities} == {"search_query": "jazz", "media_class": "genre"}
    service.flush()
    turns = service.store.logs().turns().sort("ts")
    users = turns["user_id"].to_list()
    assert users[0] == "maple_house.household.assist_satellite.a"
    assert users[1].startswith("maple_house.household.h") and "/" not in users[1]  # not plain: hashed
    assert turns["area"].to_list() == [None, None] and turns["device_type"].to_list() == [None, None]


def test_teaching_is_handled_and_a_taught_phrase_becomes_several_intents(service: Service) -> None:
    async def body(port: int) -> tuple[list[Event], list[Event]]:
        taught = await ha_process(
            port, "When I say movie night I mean turn off the living room light and turn on the TV"
        )
        return taught, await ha_process(port, "movie night")

    taught, night = run_with_server(service, body)
    assert Handled.is_type(taught[0].type)
    assert [e.type for e in night] == ["intents-start", "intent", "intent", "intents-stop"]
    intents = [Intent.from_event(e) for e in night[1:3]]
    assert [i.name for i in intents] == ["HassTurnOff", "HassTurnOn"]
    assert {e.name: e.value for e in intents[1].entities} == {"name": "TV"}
    assert intents[0].text and intents[1].text is None  # HA joins the speech of all: say it once
    assert IntentsStop.is_type(night[3].type)


async def _raw(port: int, data: bytes, then: Event | None = None) -> list[Event]:
    """Send raw bytes (and then an event), collect what comes back until the server closes or goes quiet."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        assert client._writer is not None
        client._writer.write(data)
        await client._writer.drain()
        if then is not None:
            await client.write_event(then)
        out: list[Event] = []
        while True:
            try:
                event = await asyncio.wait_for(client.read_event(), 5)
            except TimeoutError:
                return out
            if event is None:
                return out
            out.append(event)
            if then is not None and len(out) == 2:
                return out


@pytest.mark.parametrize(
    ("data", "code", "keeps_connection"),
    [
        (b"{not json\n", "bad-event", False),
        (b'["transcript"]\n', "bad-event", False),
        (b'{"type": "transcript", "data_length": 99999999}\n', "bad-event", False),
        (b"{" + b" " * 70_000 + b"}\n", "bad-event", False),
        (b'{"type": "audio-chunk", "data": {"rate": 16000}}\n', "unsupported-event", True),
        (b'{"type": "transcript", "data": {"text": 42}}\n', "bad-transcript", True),
        (b'{"type": "transcript", "data": {"text": "hi", "context": "kitchen"}}\n', "bad-transcript", True),
        (OVERSIZED_TEXT, "bad-transcript", True),
        (b'{"type": "transcript", "data": {"text": "Licht an", "language": "de"}}\n', "bad-transcript", True),
    ],
)
def test_bad_input_gets_an_error_event_and_the_server_keeps_serving(
    service: Service, data: bytes, code: str, keeps_connection: bool
) -> None:
    async def body(port: int) -> tuple[list[Event], list[Event]]:
        first = await _raw(port, data, then=Transcript("turn on the kitchen light").event())
        return first, await ha_process(port, "turn on the kitchen light")

    first, after = run_with_server(service, body)
    assert Error.is_type(first[0].type) and Error.from_event(first[0]).code == code
    assert Error.from_event(first[0]).text
    if keeps_connection:
        assert [e.type for e in first] == ["error", "intent"]  # the same connection still answers
    else:
        assert len(first) == 1  # out of step: closed after the error
    assert Intent.from_event(after[0]).name == "HassTurnOn"  # a new connection is served


def test_a_client_gone_mid_request_is_a_log_line_and_the_server_keeps_serving(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(port: int) -> list[Event]:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'{"type": "transcript", "data_length": 200}\n{"text": "turn on')  # data cut short
        await writer.drain()
        writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # asks, then leaves without reading
        writer.write(json.dumps(Transcript("turn on the kitchen light").event().to_dict()).encode() + b"\n")
        writer.close()
        await asyncio.sleep(0.3)
        return await ha_process(port, "turn off the kitchen light")

    with caplog.at_level(logging.WARNING, logger="selflearn.integrations.wyoming"):
        after = run_with_server(service, body)
    assert any("went away mid-request" in r.getMessage() for r in caplog.records)
    assert Intent.from_event(after[0]).name == "HassTurnOff"


def test_real_use_feeds_learn_and_the_learned_rewrite_answers_the_next_request(service: Service) -> None:
    """A satellite's household repairs a wording HA's templates lack; after `learn` the wording itself works."""
    from selflearn.learners.learn import learn

    agent = WyomingAgent(service, service.runtimes["maple_house"].home)

    def ask(text: str) -> Event:
        (answer,) = agent.answer(Transcript(text, context=SATELLITE, language="en").event())
        return answer

    for _ in range(3):
        assert NotRecognized.is_type(ask("switch on the cooking light").type)
        assert Intent.is_type(ask("turn on the kitchen light").type)
    service.flush()
    learn(service.store.logs(), service.artifacts, homes=list(service.homes.values()))
    service.rewriter.reload_if_changed()
    answer = ask("switch on the cooking light")
    assert Intent.is_type(answer.type), answer
    intent = Intent.from_event(answer)
    assert (intent.name, {e.name: e.value for e in intent.entities}) == ("HassTurnOn", {"name": "Kitchen Light"})
    service.flush()
    last = service.store.logs().turns().sort("ts").row(-1, named=True)
    assert last["rewrite_source"] in ("personal", "global") and last["rewritten_text"] == "turn on the kitchen light"


def test_serve_with_wyoming_learns_from_real_use_while_running(tmp_path: Path) -> None:
    """`selflearn serve --wyoming`: HA talks Wyoming, an admin's POST /v1/learn learns from it in the same process
    (one store, one writer), and the next Wyoming request uses what was learned, without a restart."""
    import os
    import subprocess
    import sys

    import httpx

    from selflearn.bench.serve import _free_port, _wait_ready
    from selflearn.home import SHIPPED_HOMES_DIR
    from selflearn.service.tokens import Tokens

    admin, _ = Tokens(tmp_path / "tokens.json").create(home=None, admin=True)
    http_port, wy_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SELFLEARN_DB", "SELFLEARN_ARTIFACTS")}
    env["SELFLEARN_HOME"] = str(tmp_path)
    cmd = [sys.executable, "-c", "from selflearn.cli.main import app; app()", "serve", "--port", str(http_port)]
    cmd += ["--home", str(SHIPPED_HOMES_DIR / "maple_house.yaml"), "--wyoming", f"tcp://127.0.0.1:{wy_port}"]
    cmd += ["--db", str(tmp_path / "db.duckdb")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, proc)

        async def say(text: str) -> Event:
            return (await ha_process(wy_port, text))[0]

        async def repairs() -> None:
            for _ in range(3):
                assert NotRecognized.is_type((await say("switch on the cooking light")).type)
                assert Intent.is_type((await say("turn on the kitchen light")).type)

        asyncio.run(repairs())
        learned = httpx.post(url + "/v1/learn", headers={"Authorization": f"Bearer {admin}"}, timeout=120)
        assert learned.status_code == 200, learned.text
        answer = asyncio.run(say("switch on the cooking light"))
        assert Intent.is_type(answer.type) and Intent.from_event(answer).name == "HassTurnOn"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    with Store(tmp_path / "db.duckdb") as store:  # SIGTERM right after the last request: its turn was written
        assert store.logs().turns()["asr_text"].to_list()[-1] == "switch on the cooking light"
        assert len(store.logs()) == 7


def test_a_unix_socket_uri_is_served_too(service: Service, tmp_path: Path) -> None:
    from wyoming.client import AsyncUnixClient

    path = tmp_path / "selflearn.sock"

    async def main() -> Event | None:
        started = asyncio.Event()
        agent = WyomingAgent(service, service.runtimes["maple_house"].home)
        task = asyncio.create_task(serve(f"unix://{path}", agent, started, handle_signals=False))
        await asyncio.wait_for(started.wait(), 10)
        try:
            async with AsyncUnixClient(str(path)) as client:
                await client.write_event(Transcript("turn on the kitchen light", context=SATELLITE).event())
                return await client.read_event()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    event = asyncio.run(main())
    assert event is not None and Intent.from_event(event).name == "HassTurnOn"
