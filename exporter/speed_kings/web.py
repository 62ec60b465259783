"""The daemon's HTTP face: /metrics, health and readiness, the status page, its JSON, reload.

Everything is read from a `StatusSource` on each request, so the web layer keeps no state."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from speed_kings.runtime import runtime_counts
from speed_kings.status import StatusSource
from speed_kings.web_page import render_page
from speed_kings.webconfig import UNAUTHENTICATED_PATHS, WWW_AUTHENTICATE, BasicAuth, WebConfig

STOP_GRACE_SECONDS = 5.0

# The page runs no script and loads nothing: say so, so injected markup could do nothing.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_SOURCE: web.AppKey[StatusSource] = web.AppKey("source")
_LOGGER: web.AppKey[structlog.typing.FilteringBoundLogger] = web.AppKey("logger")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    source: StatusSource,
    *,
    logger: structlog.typing.FilteringBoundLogger | None = None,
    web_config: WebConfig | None = None,
) -> web.Application:
    """`web_config` (`--web-config`) adds basic auth and response headers; TLS is the
    server's (`WebServer`)."""
    log: structlog.typing.FilteringBoundLogger = (
        logger if logger is not None else structlog.get_logger("speed_kings.web")
    )
    middlewares = [_access_log(log)]
    if web_config is not None and web_config.basic_auth:
        middlewares.append(_basic_auth(BasicAuth(web_config.users)))
    app = web.Application(middlewares=middlewares)
    if web_config is not None and web_config.headers:
        app.on_response_prepare.append(_add_headers(web_config.headers))
    app[_SOURCE] = source
    app[_LOGGER] = log
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _index)
    app.router.add_get("/api/probes", _api_probes)
    app.router.add_get("/api/status", _api_status)
    app.router.add_post("/-/reload", _reload)
    app.router.add_get("/-/reload", _reload_wrong_method)
    return app


def _access_log(log: structlog.typing.FilteringBoundLogger) -> Middleware:
    """Debug-level access log. Method, path and status only: headers may carry credentials,
    and query strings are not ours to record."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            log.debug(
                "http_request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.monotonic() - start) * 1000, 2),
                remote=request.remote,
            )

    return middleware


def _basic_auth(auth: BasicAuth) -> Middleware:
    """Every route but UNAUTHENTICATED_PATHS needs a user of the web config. Inside the access
    log, so refusals are logged (method, path, 401: never the credentials)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED_PATHS or await auth.check(
            request.headers.get("Authorization")
        ):
            return await handler(request)
        return web.Response(
            status=401,
            text="401 Unauthorized\n",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE, "Cache-Control": "no-store"},
        )

    return middleware


def _add_headers(
    headers: Mapping[str, str],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The web config's `http_server_config.headers` on every response that has not set its
    own (the status page keeps its stricter Content-Security-Policy)."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    return add


# --- handlers -------------------------------------------------------------------------------
async def _metrics(request: web.Request) -> web.StreamResponse:
    chunks, content_type = request.app[_SOURCE].render_metrics()
    # The content type carries version/charset parameters: pass it as a header, verbatim.
    response = web.StreamResponse(headers={"Content-Type": content_type})
    # Prometheus asks for gzip (as prometheus_client's server does, compress when asked).
    gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip else None
    if compressor is not None:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        for chunk in chunks:
            if compressor is not None:
                # zlib lets go of the GIL: compressing in a thread keeps this loop, on which
                # probes take their timestamps, free while a large exposition is compressed.
                chunk = await loop.run_in_executor(None, compressor.compress, chunk)
            else:
                await asyncio.sleep(0)  # let probes run between chunks of a large exposition
            await response.write(chunk)
        if compressor is not None:
            await response.write(compressor.flush())
        await response.write_eof()
    except ConnectionResetError:
        # The scraper hung up (its timeout, a restart): nothing to answer, nothing broken.
        request.app[_LOGGER].debug("metrics_scrape_aborted", path=request.path)
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    ready, reason = request.app[_SOURCE].ready()
    if ready:
        return web.Response(text="ready")
    return web.Response(status=503, text=reason or "not ready")


async def _index(request: web.Request) -> web.Response:
    page = render_page(request.app[_SOURCE].snapshot())
    return web.Response(text=page, content_type="text/html", headers=_PAGE_HEADERS)


async def _api_probes(request: web.Request) -> web.Response:
    snap = request.app[_SOURCE].snapshot()
    return web.json_response(
        {"last_results": snap.last_results, "recent_probes": snap.recent_probes}
    )


async def _api_status(request: web.Request) -> web.Response:
    """The whole snapshot, plus "runtime": the process's own counts (asyncio tasks,
    threads, gc objects, fds, sockets, RSS) so leaks can be watched from outside."""
    doc = dataclasses.asdict(request.app[_SOURCE].snapshot())
    doc["runtime"] = runtime_counts()
    return web.json_response(doc)


async def _reload(request: web.Request) -> web.Response:
    log = request.app[_LOGGER]
    try:
        ok, message = await request.app[_SOURCE].reload()
    except Exception as exc:  # a bug in the reload path must still answer, and be logged
        log.exception("reload_failed")
        return web.Response(status=500, text=f"reload failed: {type(exc).__name__}: {exc}")
    return web.Response(status=200 if ok else 500, text=message)


async def _reload_wrong_method(request: web.Request) -> web.Response:
    # As blackbox_exporter: a stray GET (a crawler, a browser prefetch) must not reload.
    return web.Response(
        status=405, text="This endpoint requires a POST request.\n", headers={"Allow": "POST"}
    )


# --- server ---------------------------------------------------------------------------------
class WebServer:
    """`make_app` behind an AppRunner + TCPSite, without aiohttp's stderr access log."""

    def __init__(
        self,
        source: StatusSource,
        host: str,
        port: int,
        *,
        logger: structlog.typing.FilteringBoundLogger | None = None,
        web_config: WebConfig | None = None,
    ) -> None:
        self._app = make_app(source, logger=logger, web_config=web_config)
        self._ssl = web_config.ssl_context if web_config is not None else None
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Binds and serves; returns "http://HOST:PORT" (https with TLS) with the real port
        (port 0 works)."""
        if self._runner is not None:
            raise RuntimeError("the web server is already started")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=STOP_GRACE_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._ssl else 'http'}://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
