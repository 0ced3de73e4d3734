"""``selflearn wyoming``: a Wyoming intent service that Home Assistant's Wyoming integration (2024.11+) talks to.

HA's Wyoming conversation entity (``homeassistant/components/wyoming/conversation.py``) connects once per request,
sends ``transcript`` (text, language, context ``{conversation_id, device_id?, satellite_id?}``) and reads until it
gets ``intent`` (one request), ``intents-start`` / ``intent``... / ``intents-stop`` (a taught phrase that stands for
several), ``not-recognized`` (its text becomes HA's error answer), ``handled`` (selflearn answered by itself:
teaching, feedback) or ``error``. HA then runs each intent with its own handlers, so HA, not selflearn, acts on the
devices. ``describe`` gets an ``info`` with one intent program, which is how HA's config flow finds the service.

Each ``intent`` carries ``context.turn_id``. selflearn's own HA integration (``custom_components/selflearn``) runs
the intents and then sends ``intent-result`` (``turn_id``, ``success``, ``error_code``, ``speech``) on the same
connection: a failed intent turns the logged Turn ``failed``, so failures only HA sees (an entity that is
unavailable, a handler error) become defect signals too. It is answered ``intent-result-recorded`` or ``error``.

Each request runs through the same Runtime as the CLI and the HTTP service (``service.Service``: learned rewrites
that follow the artifact set in service, context, taught preferences, the teacher) and is logged as a Turn in the
store, so signals, mining and ``learn`` work on real use. Bad input never stops the server: a malformed event gets
an ``error`` event and that connection is closed (the stream cannot be re-synchronised); an unknown event type or a
bad transcript gets an ``error`` and the connection stays; a client gone mid-request is a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from functools import partial

from pydantic import ValidationError
from wyoming.asr import Transcript
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Attribution, Describe, Info, IntentModel, IntentProgram
from wyoming.intent import Entity, Intent, IntentsStart, IntentsStop, NotRecognized
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer

from selflearn import __version__
from selflearn.home import Home
from selflearn.integrations.conversation import LANGUAGES, ConversationInput, ResultReport, converse
from selflearn.service.service import Service

MAX_EVENT_BYTES = 64 * 1024  # header line, data and payload each: far above any transcript (text <= 1,000 chars)
PROGRAM = "selflearn"
RESULT = "intent-result"  # client -> selflearn: how carrying out a turn's intents went (ResultReport's fields)
RECORDED = "intent-result-recorded"  # selflearn -> client: the report is on the turn (turn_id, result_status)
SELFLEARN = Attribution(name="selflearn", url="")
TEMPLATES = Attribution(name="Home Assistant intents (CC BY 4.0)", url="https://github.com/home-assistant/intents")
log = logging.getLogger(__name__)


class BadEvent(ValueError):
    """Bytes that are not a Wyoming event; the connection cannot continue (the stream is out of step)."""


def info() -> Info:
    """The answer to ``describe``: one installed intent program with its languages."""
    model = IntentModel(
        name=f"{PROGRAM}-en",
        attribution=TEMPLATES,
        installed=True,
        description="hassil over home-assistant-intents with learned rewrites, context and taught preferences",
        version=__version__,
        languages=list(LANGUAGES),
    )
    program = IntentProgram(
        name=PROGRAM,
        attribution=SELFLEARN,
        installed=True,
        description="A voice assistant that learns from its own interactions",
        version=__version__,
        models=[model],
    )
    return Info(intent=[program])


class WyomingAgent:
    """One home's Wyoming answers, without sockets: a transcript in, the events HA expects out."""

    def __init__(self, service: Service, home: Home) -> None:
        self.service = service
        self.runtime = service.runtimes[home.id]
        self.info = info().event()

    def answer(self, event: Event) -> list[Event]:
        """The events answering one ``transcript`` (an ``error`` for a bad one); the turn goes to the store."""
        data = event.data
        context = data.get("context") or {}
        if not isinstance(context, dict):
            return [Error("transcript context must be an object", code="bad-transcript").event()]
        fields = {k: context.get(k) for k in ("conversation_id", "device_id", "satellite_id")}
        try:
            request = ConversationInput(text=data.get("text"), language=data.get("language") or "en", **fields)
            reply = converse(self.runtime, request)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            return [Error(f"bad transcript: {where}: {first['msg']}", code="bad-transcript").event()]
        speech = _no_template(reply.speech)
        if reply.handled:
            return [Handled(text=speech).event()]
        if reply.abstained:
            return [NotRecognized(text=speech).event()]
        context = {"turn_id": reply.turn.turn_id}  # HA's own agent ignores it; ours reports the result with it
        intents = [
            Intent(
                name=i.name, entities=[Entity(k, v) for k, v in i.entities.items()], text=speech, context=context
            ).event()
            for i in reply.intents
        ]
        if len(intents) == 1:
            return intents
        for later in intents[1:]:
            later.data.pop("text", None)  # HA joins every intent's speech: say the combined response once
        return [IntentsStart().event(), *intents, IntentsStop().event()]

    def record(self, event: Event) -> Event:
        """Answer an ``intent-result``: put the report on its turn (``intent-result-recorded``), or say why not."""
        try:
            report = ResultReport.model_validate(event.data)
            turn = self.service.record_result(self.runtime.home.id, report)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            return Error(f"bad intent-result: {where}: {first['msg']}", code="bad-result").event()
        except (LookupError, ValueError) as e:
            return Error(f"bad intent-result: {e}", code="bad-result").event()
        return Event(RECORDED, {"turn_id": turn.turn_id, "result_status": turn.result_status})


def _no_template(text: str) -> str:
    """HA renders an intent's text as a Jinja template when it holds ``{{`` or ``{%``: a device name must not."""
    return text.replace("{", "(").replace("}", ")")


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, None at a clean end of stream. ``wyoming.event.async_read_event`` turns every problem into
    a silent disconnect; this one raises ``BadEvent`` saying what was wrong, so the client gets an error event."""
    try:
        line = await reader.readline()
    except ValueError as e:  # asyncio's line limit (64 KiB) exceeded
        raise BadEvent(f"event header over {MAX_EVENT_BYTES} bytes") from e
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError as e:
        raise BadEvent(f"event header is not JSON: {e}") from e
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadEvent("event header must be a JSON object with a string 'type'")
    data = header.get("data") or {}
    sizes = [header.get("data_length") or 0, header.get("payload_length") or 0]
    if not isinstance(data, dict) or not all(isinstance(n, int) and 0 <= n <= MAX_EVENT_BYTES for n in sizes):
        raise BadEvent(f"event data must be an object, data_length/payload_length integers <= {MAX_EVENT_BYTES}")
    if sizes[0]:
        try:
            extra = json.loads(await reader.readexactly(sizes[0]))
        except ValueError as e:
            raise BadEvent(f"event data is not JSON: {e}") from e
        if not isinstance(extra, dict):
            raise BadEvent("event data must be a JSON object")
        data = {**data, **extra}
    payload = await reader.readexactly(sizes[1]) if sizes[1] else None
    return Event(type=header["type"], data=data, payload=payload)


class IntentHandler(AsyncEventHandler):
    """One client connection (HA opens one per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, agent: WyomingAgent) -> None:
        super().__init__(reader, writer)
        self.agent = agent
        self.peer = str(writer.get_extra_info("peername"))

    async def run(self) -> None:
        """Serve events until the client leaves or breaks the stream; never raises (the server keeps serving)."""
        try:
            while True:
                try:
                    event = await read_event(self.reader)
                except BadEvent as e:
                    log.warning("wyoming client %s: %s; closing the connection", self.peer, e)
                    await self.write_event(Error(str(e), code="bad-event").event())
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("wyoming client %s went away mid-request: %s", self.peer, e or type(e).__name__)
        except Exception as e:  # a bug must cost one request, not the server
            log.exception("wyoming client %s: internal error", self.peer)
            await self._last_words(Error(f"internal error: {type(e).__name__}", code="internal-error").event())
        finally:
            self.writer.close()

    async def _last_words(self, event: Event) -> None:
        with contextlib.suppress(ConnectionError):
            await self.write_event(event)

    async def handle_event(self, event: Event) -> bool:
        if Transcript.is_type(event.type):
            for answer in self.agent.answer(event):
                await self.write_event(answer)
        elif event.type == RESULT:
            await self.write_event(self.agent.record(event))
        elif Describe.is_type(event.type):
            await self.write_event(self.agent.info)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            log.warning("wyoming client %s: unsupported event type %r", self.peer, event.type)
            answers = "describe, transcript and intent-result"
            message = f"unsupported event type {event.type!r} (this intent service answers {answers})"
            await self.write_event(Error(message, code="unsupported-event").event())
        return True


async def serve(
    uri: str, agent: WyomingAgent, started: asyncio.Event | None = None, *, handle_signals: bool = True
) -> None:
    """Listen on ``uri`` (tcp://HOST:PORT, unix://PATH) until cancelled, or SIGTERM / SIGINT when
    ``handle_signals`` (then return, so the caller can flush the turns still buffered; off when another server in the
    same loop owns the signals); ``started`` is set once it accepts connections."""
    server = AsyncServer.from_uri(uri)
    await server.start(partial(IntentHandler, agent=agent))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform/thread
            loop.add_signal_handler(sig, stop.set)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await server.stop()
