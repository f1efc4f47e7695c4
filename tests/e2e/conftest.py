"""Fixtures of the end-to-end tests: one `spanlens serve` for the session, the mock LLM server,
and a factory for extra servers (durability tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SpanlensServer
from mock_llm import MockLLM


@pytest.fixture(scope="session")
def spanlens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpanlensServer]:
    """The server every ingest test talks to; stopped with SIGTERM at the end, which must exit 0."""
    base = tmp_path_factory.mktemp("spanlens")
    server = SpanlensServer(base / "data", base / "serve.log").start()
    yield server
    code = server.stop()
    assert code == 0, f"spanlens serve exited with {code} on SIGTERM:\n{server.log()}"
    assert "INFO stopped" in server.log(), server.log()


@pytest.fixture(scope="session")
def mock_llm() -> Iterator[MockLLM]:
    """The local OpenAI-compatible server."""
    m = MockLLM().start()
    yield m
    m.stop()


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator:
    """Starts extra servers on a data directory of the caller's choice; stops leftovers at the end."""
    started: list[SpanlensServer] = []

    def start(data_dir: Path, name: str = "serve", extra_args: list[str] | None = None) -> SpanlensServer:
        s = SpanlensServer(data_dir, tmp_path / f"{name}-{len(started)}.log", extra_args).start()
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()


def pytest_runtest_makereport(item, call):  # noqa: ANN001
    """On a failure, attach the session server's log: the first thing to read."""
    if call.excinfo is None or call.when != "call":
        return
    server = item.funcargs.get("spanlens") if hasattr(item, "funcargs") else None
    if isinstance(server, SpanlensServer):
        item.add_report_section("call", "spanlens serve log", server.log()[-4000:])
