"""The simulator's HTTP server: routes, scenarios (`profile@fault`), auth, errors, truth."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from speed_kings.clock import Clock, SystemClock
from speed_kings.simulator import render_anthropic, render_gemini, render_ollama, render_openai
from speed_kings.simulator.ollama import OllamaModels
from speed_kings.simulator.plan import make_plan
from speed_kings.simulator.profiles import FAULTS, PROFILES, Profile
from speed_kings.simulator.ratelimit import rate_limit_headers
from speed_kings.simulator.render_base import (
    STATUS,
    BadRequest,
    Context,
    ErrorKind,
    Parsed,
    Renderer,
    json_object,
    rfc3339,
)
from speed_kings.simulator.stream import StreamJob, serve_stream
from speed_kings.simulator.truth import MAX_TRUTHS, RequestTruth, TruthLog

REQUEST_ID = web.RequestKey("speed_kings_sim_request_id", str)
STOP_GRACE_SECONDS = 1.0

_ERROR_FAULTS: Mapping[str, tuple[ErrorKind, str]] = {
    "rate_limit": ("rate_limit", "Rate limit reached (simulated). Please try again in 7s."),
    "overloaded": ("overloaded", "The server is overloaded (simulated). Please retry."),
    "overloaded_529": ("overloaded_529", "Overloaded (simulated)."),
    "server_error": ("server_error", "Internal server error (simulated)."),
}


@dataclass(frozen=True, slots=True)
class _Wire:
    name: str
    renderer: type[Renderer]
    auth_ok: Callable[[Mapping[str, str], Mapping[str, str]], bool]


_OPENAI = _Wire("openai", render_openai.OpenAIRenderer, render_openai.auth_ok)
_ANTHROPIC = _Wire("anthropic", render_anthropic.AnthropicRenderer, render_anthropic.auth_ok)
_GEMINI = _Wire("gemini", render_gemini.GeminiRenderer, render_gemini.auth_ok)
_OLLAMA = _Wire("ollama", render_ollama.OllamaRenderer, render_ollama.auth_ok)


class _UnknownScenario(Exception):
    pass


class Simulator:
    """LLM providers over real HTTP, with known truth.

    `profiles` are added to (or replace, by name) the built-in `PROFILES`. Routes live under
    `/{profile}` or `/{profile@fault}`, or at the root for `default_profile`. The last
    `max_truths` requests are remembered; each costs ~32 bytes per chunk sent, so a
    long-running demo that keeps 10,000 probes of 300 tokens holds ~100 MB: lower it there.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile] | None = None,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        default_profile: str = "openai",
        max_truths: int = MAX_TRUTHS,
    ) -> None:
        merged = {**PROFILES, **(profiles or {})}
        for name in merged:
            if not name or "@" in name or "/" in name:
                raise ValueError(f"profile name {name!r} cannot be used in a URL path segment")
        if default_profile not in merged:
            raise ValueError(f"default profile {default_profile!r} is not one of {sorted(merged)}")
        self._profiles: Mapping[str, Profile] = MappingProxyType(merged)
        self._default = default_profile
        self._seed = seed
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._truths = TruthLog(max_truths)
        self._ids = 0
        self._sequence = 0  # wire requests only, so truth queries do not shift the draws
        self._served: Counter[str] = Counter()
        self._ollama = OllamaModels(self._clock.monotonic, self._clock.time)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.app = self._build_app()

    # --- public API ------------------------------------------------------------------------
    @property
    def profiles(self) -> Mapping[str, Profile]:
        return self._profiles

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,  # a client that hangs up ends its stream at once
            shutdown_timeout=STOP_GRACE_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Streams (stalls above all) would hold a graceful shutdown: cancel them first.
        tasks = [t for t in self._inflight if not t.done() and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        await runner.cleanup()
        self._url = None

    def truth(self, request_id: str) -> RequestTruth | None:
        return self._truths.get(request_id)

    def truths(self) -> list[RequestTruth]:
        return self._truths.all()

    # --- app -------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware()])
        app.on_response_prepare.append(self._stamp_request_id)
        for prefix in ("/{scenario}", ""):
            app.router.add_post(prefix + "/v1/chat/completions", self._openai)
            app.router.add_post(prefix + "/v1/messages", self._anthropic)
            app.router.add_post(
                prefix + "/v1beta/models/{model}:streamGenerateContent", self._gemini
            )
            app.router.add_post(prefix + "/api/chat", self._ollama_chat)
            app.router.add_post(prefix + "/api/generate", self._ollama_generate)
            app.router.add_get(prefix + "/api/ps", self._ollama_ps)
            app.router.add_get(prefix + "/api/tags", self._ollama_tags)
        app.router.add_get("/_sim/requests", self._sim_requests)
        app.router.add_get("/_sim/requests/{request_id}", self._sim_request)
        app.router.add_get("/_sim/profiles", self._sim_profiles)
        return app

    def _middleware(self) -> Any:
        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            self._ids += 1
            request[REQUEST_ID] = f"sim-{self._ids:06d}"
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                return await handler(request)
            finally:
                if task is not None:
                    self._inflight.discard(task)

        return track

    @staticmethod
    async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID)
        if request_id is not None:
            response.headers["x-request-id"] = request_id

    def _scenario(self, request: web.Request) -> tuple[str, Profile, str | None]:
        scenario = request.match_info.get("scenario", self._default)
        name, _, fault = scenario.partition("@")
        profile = self._profiles.get(name)
        if profile is None:
            raise _UnknownScenario(
                f"unknown profile {name!r}; valid profiles: {', '.join(self._profiles)}"
            )
        if fault and fault not in FAULTS:
            raise _UnknownScenario(f"unknown fault {fault!r}; valid faults: {', '.join(FAULTS)}")
        return name, profile, fault or None

    # --- wire routes -----------------------------------------------------------------------
    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _OPENAI, render_openai.parse)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _ANTHROPIC, render_anthropic.parse)

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, query = request.match_info["model"], request.query
        return await self._serve(request, _GEMINI, lambda b: render_gemini.parse(b, model, query))

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _OLLAMA, render_ollama.parse)

    async def _serve(
        self, request: web.Request, wire: _Wire, parse: Callable[[bytes], Parsed]
    ) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        try:
            key, profile, url_fault = self._scenario(request)
        except _UnknownScenario as exc:
            ctx = Context(request_id, self._profiles[self._default])
            return await self._error(request, wire, ctx, "not_found", str(exc), None)
        body = await request.read()
        mono = self._clock.monotonic
        truth = RequestTruth(request_id, key, url_fault, wire.name, received_at=mono())
        self._truths.add(truth)
        sequence, self._sequence = self._sequence, self._sequence + 1
        ctx = Context(request_id, profile)
        if profile.require_auth and not wire.auth_ok(request.headers, request.query):
            return await self._error(request, wire, ctx, "auth", _auth_message(wire), truth)
        try:
            parsed = parse(body)
        except BadRequest as exc:
            return await self._error(request, wire, ctx, "bad_request", str(exc), truth)

        max_tokens = parsed.max_tokens or profile.default_max_tokens
        unix_time = self._clock.time()
        plan = make_plan(
            profile,
            seed=self._seed,
            sequence=sequence,
            url_fault=url_fault,
            max_tokens=max_tokens,
            unix_time=unix_time,
        )
        truth.fault, truth.model, truth.max_tokens = plan.fault, parsed.model, max_tokens
        truth.input_tokens = max(parsed.prompt_words, 1)
        ctx = Context(
            request_id,
            profile,
            model=parsed.model,
            input_tokens=truth.input_tokens,
            include_usage=parsed.include_usage,
            reasoning_planned=len(plan.reasoning),
            tokens_per_second=plan.tokens_per_second,
            ttft_seconds=plan.ttft_seconds,
            created=unix_time,
            options=parsed.options,
        )
        limits = rate_limit_headers(
            profile.rate_limit_headers,
            served=self._served[key],
            tokens=truth.input_tokens + max_tokens,
            unix_time=unix_time,
            exhausted=plan.fault == "rate_limit",
        )
        self._served[key] += 1
        error = _ERROR_FAULTS.get(plan.fault or "")
        if error is not None:
            kind, message = error
            return await self._error(request, wire, ctx, kind, message, truth, limits)

        start = truth.received_at
        if wire is _OLLAMA:
            load = await self._ollama.ensure_loaded(key, parsed.model, profile.model_load_seconds)
            truth.model_load_seconds = load
            start += load
        job = StreamJob(
            request=request,
            renderer=wire.renderer(ctx),
            plan=plan,
            truth=truth,
            monotonic=mono,
            start=start,
            tokens_per_chunk=profile.tokens_per_chunk,
            headers_at_first_token=profile.headers_at_first_token,
            keepalive_interval=profile.keepalive_interval,
            extra_headers=limits,
        )
        return await serve_stream(job)

    async def _error(
        self,
        request: web.Request,
        wire: _Wire,
        ctx: Context,
        kind: ErrorKind,
        message: str,
        truth: RequestTruth | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        renderer = wire.renderer(ctx)
        body = renderer.error_body(kind, message)
        resp = web.Response(
            status=STATUS[kind],
            reason="Overloaded" if kind == "overloaded_529" else None,
            body=body,
            content_type="application/json",
        )
        resp.headers.update(extra_headers or {})
        resp.headers.update(renderer.error_headers(kind))
        mono = self._clock.monotonic
        if truth is not None:
            truth.status = resp.status
            truth.headers_sent_at = mono()
        await resp.prepare(request)
        await resp.write_eof()
        if truth is not None:
            truth.bytes_sent = len(body)
            truth.finished_at = mono()
        return resp

    # --- Ollama model management -----------------------------------------------------------
    async def _ollama_generate(self, request: web.Request) -> web.StreamResponse:
        """Only what probes use: an empty prompt loads the model, keep_alive 0 unloads it."""
        request_id = request[REQUEST_ID]
        try:
            key, profile, _ = self._scenario(request)
        except _UnknownScenario as exc:
            ctx = Context(request_id, self._profiles[self._default])
            return await self._error(request, _OLLAMA, ctx, "not_found", str(exc), None)
        body = await request.read()
        mono = self._clock.monotonic
        truth = RequestTruth(request_id, key, None, _OLLAMA.name, received_at=mono())
        self._truths.add(truth)
        ctx = Context(request_id, profile)
        try:
            data = json_object(body)
            model = data.get("model")
            if not isinstance(model, str) or not model:
                raise BadRequest("model is required")
            if data.get("prompt"):
                raise BadRequest("the simulator's /api/generate only loads (empty prompt)")
        except BadRequest as exc:
            return await self._error(request, _OLLAMA, ctx, "bad_request", str(exc), truth)
        truth.model = model
        reply: dict[str, Any] = {
            "model": model,
            "created_at": rfc3339(self._clock.time()),
            "response": "",
            "done": True,
        }
        if data.get("keep_alive") in (0, "0", "0s"):
            self._ollama.unload(key, model)
            reply["done_reason"] = "unload"
        else:
            load = await self._ollama.ensure_loaded(key, model, profile.model_load_seconds)
            truth.model_load_seconds = load
            reply.update(done_reason="load", load_duration=render_ollama.ns(load))
            reply["total_duration"] = render_ollama.ns(mono() - truth.received_at)
        truth.status = 200
        truth.headers_sent_at = mono()
        resp = web.json_response(reply)
        await resp.prepare(request)
        await resp.write_eof()
        truth.finished_at = mono()
        return resp

    async def _ollama_ps(self, request: web.Request) -> web.StreamResponse:
        return self._ollama_listing(request, lambda key, p: self._ollama.ps(key))

    async def _ollama_tags(self, request: web.Request) -> web.StreamResponse:
        return self._ollama_listing(request, lambda key, p: self._ollama.tags(key, p.model))

    def _ollama_listing(
        self, request: web.Request, listing: Callable[[str, Profile], dict[str, Any]]
    ) -> web.StreamResponse:
        try:
            key, profile, _ = self._scenario(request)
        except _UnknownScenario as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(listing(key, profile))

    # --- truth endpoints -------------------------------------------------------------------
    async def _sim_requests(self, request: web.Request) -> web.StreamResponse:
        return _json([t.to_dict() for t in self._truths.all()])

    async def _sim_request(self, request: web.Request) -> web.StreamResponse:
        truth = self._truths.get(request.match_info["request_id"])
        if truth is None:
            return web.json_response({"error": "unknown request id"}, status=404)
        return _json(truth.to_dict())

    async def _sim_profiles(self, request: web.Request) -> web.StreamResponse:
        return _json({name: p.to_dict() for name, p in self._profiles.items()})


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


def _auth_message(wire: _Wire) -> str:
    return {
        "openai": "Missing bearer authentication in header (Authorization: Bearer <key>)",
        "anthropic": "x-api-key and anthropic-version headers are required",
        "gemini": "Method doesn't allow unregistered callers: pass x-goog-api-key",
        "ollama": "unauthorized",
    }[wire.name]
