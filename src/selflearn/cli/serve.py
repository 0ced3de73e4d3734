"""``selflearn serve`` and ``selflearn wyoming``: the HTTP service (API + dashboard) and the Wyoming server."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn.errors import SelflearnError, UsageError

if TYPE_CHECKING:
    import uvicorn

    from selflearn.service.service import Service
from selflearn.cli.app import DbOption, err


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    home: Annotated[
        list[Path] | None,
        typer.Option(
            "--home", exists=True, dir_okay=False, help="Home YAML to serve (repeatable). Default: the shipped homes."
        ),
    ] = None,
    db: DbOption = None,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts", file_okay=False, help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the data dir."
        ),
    ] = None,
    wyoming: Annotated[
        str | None,
        typer.Option(
            "--wyoming",
            help="Also serve Home Assistant's Wyoming integration on this URI (tcp://HOST:PORT), same process and "
            "store, so POST /v1/learn learns from it while it runs. Needs exactly one --home.",
        ),
    ] = None,
) -> None:
    """Run the HTTP service (OpenAPI at /docs); tokens come from `selflearn tokens create --home H`."""
    import uvicorn

    from selflearn.home import load_home, shipped_homes
    from selflearn.service.app import create_app
    from selflearn.service.service import Service

    homes = [load_home(p) for p in home] if home else shipped_homes()
    if wyoming is not None and (len(homes) != 1 or not wyoming.startswith(("tcp://", "unix://"))):
        raise UsageError("--wyoming needs a tcp://HOST:PORT or unix://PATH URI and exactly one --home")
    _check_listen(host, port)
    service = Service(homes, db=db, artifacts=artifacts)
    app = create_app(service)
    err.print(f"serving {len(homes)} home(s) on http://{host}:{port} (OpenAPI: /docs)")
    # uvicorn re-raises a captured SIGTERM after its shutdown; with the default handler that would kill the process
    # before the buffered turns are written, so SIGTERM exits through ``finally`` instead
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        if wyoming is None:
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        else:
            err.print(f"and Home Assistant's Wyoming integration on {wyoming}")
            _serve_both(
                uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False), service, wyoming
            )
    finally:
        service.close()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve_both(config: uvicorn.Config, service: Service, uri: str) -> None:
    """uvicorn and the Wyoming server in one event loop; uvicorn owns the signals and ends both."""
    import asyncio

    import uvicorn

    from selflearn.integrations.wyoming import WyomingAgent
    from selflearn.integrations.wyoming import serve as serve_wyoming

    async def both() -> None:
        agent = WyomingAgent(service, next(iter(service.homes.values())))
        started = asyncio.Event()
        task = asyncio.create_task(serve_wyoming(uri, agent, started, handle_signals=False))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # it could not listen: raise that here
        try:
            await uvicorn.Server(config).serve()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(both())
    except OSError as e:
        raise UsageError(f"cannot listen on {uri}: {e}") from e


def wyoming(
    uri: Annotated[
        str, typer.Option("--uri", help="Where to listen: tcp://HOST:PORT or unix://PATH.")
    ] = "tcp://0.0.0.0:10700",
    home: Annotated[
        str, typer.Option("--home", help="The home (shipped id or YAML file) whose names HA's entities carry.")
    ] = "maple_house",
    db: DbOption = None,
    artifacts: Annotated[
        Path | None, typer.Option("--artifacts", help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the data dir.")
    ] = None,
) -> None:
    """Serve Home Assistant's Wyoming integration (2024.11+) as an intent service; see docs/home-assistant.md."""
    import asyncio

    from selflearn.home import find_home
    from selflearn.integrations.wyoming import WyomingAgent, serve
    from selflearn.service.service import Service

    if not uri.startswith(("tcp://", "unix://")):
        raise UsageError(f"--uri must be tcp://HOST:PORT or unix://PATH, not {uri!r}")
    the_home = find_home(home)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = Service([the_home], db=db, artifacts=artifacts)
    err.print(f"wyoming intent service for home {the_home.id} on {uri} (store {service.store.path})")
    try:
        asyncio.run(serve(uri, WyomingAgent(service, the_home)))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot listen on {uri}: {e}") from e
    finally:
        service.close()


def _check_listen(host: str, port: int) -> None:
    """A taken or unusable address is one error line before anything starts (uvicorn would log it and exit 3)."""
    import socket

    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as e:
        raise SelflearnError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
