"""A real claudomator API on 127.0.0.1 for tests: uvicorn on a free port, with the service and
its pool on one event loop in a background thread (as `serve` runs them, less the inbox watcher
and the signal handlers, which only the main thread may install)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from claudomator.api import Api
from claudomator.api.server import bind
from claudomator.config import Config, load_config
from claudomator.service import Claudomator


class LiveServer:
    def __init__(
        self,
        home: Path,
        *,
        flags: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        pool: bool = True,
    ) -> None:
        self.config: Config = load_config(
            home=home,
            env=dict(env or {}),
            flags=dict(flags or {}),
        )
        self.pool = pool
        self.service: Claudomator | None = None
        self.api: Api | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the server did not start in 30 s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/api/ws"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop (the service is not thread-safe) and return its value."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._thread.is_alive():
            raise TimeoutError("the server did not stop in 30 s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self._error = e
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        service = self.service = Claudomator(self.config)
        try:
            sock = bind(self.config.server_host, 0)  # a free port
            try:
                self.api = api = Api(service, sock=sock)
            except BaseException:
                sock.close()
                raise
            serving = asyncio.create_task(api.run(stop))
            running = None
            if self.pool:
                service.node.join("serve")  # a node, as under `serve`
                running = asyncio.create_task(
                    service.pool.run(
                        lambda n: service.lifecycle.start(n) if service.gate().open else [],
                        service.lifecycle.execute,
                        lambda: False,
                        0.05,
                    )
                )
            self._ready.set()  # the socket listens already: early connections wait in its backlog
            await stop.wait()
            await service.pool.stop(5)
            if running is not None:
                await running
            await serving
            api.close()
        finally:
            service.close()


class Receiver:
    """A webhook receiver on 127.0.0.1 that records each POST; `answers` are the status codes to
    give, in order (then 200); `delay_s` holds each answer back."""

    def __init__(self, answers: list[int] | None = None, delay_s: float = 0.0) -> None:
        import http.server

        self.answers = list(answers or [])
        self.delay_s = delay_s
        self.calls: list[tuple[dict[str, str], bytes, int]] = []  # headers, body, status
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.calls.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-path"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout_s: float = 10) -> list[tuple[dict[str, str], bytes, int]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.calls)} calls, not {count}, in {timeout_s} s")
