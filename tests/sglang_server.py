"""A protocol-faithful SGLang test server: SGLang's routes, field names, reply, stream and error shapes, and the
behaviours a client can trip over, each next to the SGLang source it imitates (paths under python/sglang/srt/ of
sgl-project/sglang: entrypoints/http_server.py, managers/io_struct.py, managers/tokenizer_manager.py,
sampling/sampling_params.py, entrypoints/openai/serving_chat.py, function_call/utils.py).

It generates with the real local model through llama.cpp (`llama_url`), or, with `llama_url=None`, with a scripted
model that needs no model file ("la " per token, `token_s` apart, or a fixed `script` text four characters a token):
routing, streaming and cancellation tests then run in seconds. Faults can be injected (`inject`, or `POST
/_test/inject` with the same fields when it runs as a separate process): a number of replies with a given status, a
delay before answering, or a malformed reply (a 200 whose body or stream chunk is not JSON). What it
saw is kept in `requests`, `aborted` (rid → "abort_request" | "disconnected") and `tokens` (rid → tokens generated);
`GET /_test/state` gives the same to a test that runs it as a separate process (not an SGLang route)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.params import JSONBody
from litestar.response import Stream

from stepwise.reasoning.backends.sglang import SGLangBackend
from stepwise.reasoning.backends.transport import RetryPolicy

# tokenizer_manager._wait_one_response: a non-streamed request notices its client has gone only when this wait for
# output times out and `request.is_disconnected()` is checked.
DISCONNECT_POLL_S = 4.0


class SamplingParams(msgspec.Struct, kw_only=True):
    """sampling/sampling_params.py SamplingParams. Built as SGLang builds it, `SamplingParams(**sampling_params)`
    (tokenizer_manager._create_tokenized_object), so an unknown field is a TypeError there too."""

    max_new_tokens: int | None = 128
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    stop_regex: str | list[str] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    n: int = 1
    json_schema: str | None = None
    regex: str | None = None
    ebnf: str | None = None
    structural_tag: str | None = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    no_stop_trim: bool = False
    custom_params: dict[str, Any] | None = None
    stream_interval: int | None = None
    logit_bias: dict[str, float] | None = None
    sampling_seed: int | None = None

    def verify(self) -> None:
        # SamplingParams.verify: SGLang's own checks and messages (a ValueError: http_server answers 400).
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens is not None and self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be at least 0, got {self.max_new_tokens}.")
        if sum(x is not None for x in (self.json_schema, self.regex, self.ebnf)) > 1:
            raise ValueError("Only one of regex, json_schema, or ebnf can be set.")


class GenerateReqInput(msgspec.Struct):
    """managers/io_struct.py GenerateReqInput, the fields a client sends. Unknown top-level fields are ignored, as
    FastAPI ignores them when it builds the dataclass from the body (http_server.generate_request)."""

    text: str | list[str] | None = None
    input_ids: list[Any] | None = None  # list[int], or list[list[int]] for a batch
    sampling_params: Any = None  # dict, or list[dict] for a batch; checked as SGLang checks it
    rid: str | list[str] | None = None
    return_logprob: Any = None  # bool, or list[bool] for a batch
    stream: bool = False


class ChatCompletionRequest(msgspec.Struct):
    """entrypoints/openai/protocol.py ChatCompletionRequest (pydantic, extra fields ignored), the fields used here."""

    messages: list[dict[str, Any]]
    model: str = "default"
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    regex: str | None = None
    ebnf: str | None = None
    rid: str | None = None


def _error(message: str, status: int = 400) -> Response:
    """http_server._create_error_response: a ValueError becomes 400 {"error": {"message"}}."""
    return Response({"error": {"message": message}}, status_code=status)


def _internal_error() -> Response:
    """Any other exception in a FastAPI route (a TypeError from SamplingParams(**...)): Starlette's plain 500."""
    return Response(b"Internal Server Error", status_code=500, media_type="text/plain")


def _openai_error(message: str, status: int = 400) -> Response:
    """SGLang's flat OpenAI ErrorResponse (serving_base.create_error_response)."""
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return Response({"object": "error", "message": message, "type": kind, "param": None, "code": status},
                    status_code=status)


def _tool_schema(function: dict[str, Any]) -> dict[str, Any]:
    """function_call/utils._get_tool_schema. additionalProperties false is added because SGLang's default grammar
    backend, xgrammar, compiles schemas in strict mode, where an unstated additionalProperties means false; llama.cpp's
    llguidance would otherwise let the model add keys; "type": "object" likewise, since a schema without a type lets
    llguidance accept any JSON value (SmolLM2 answered `[true]`)."""
    return {"type": "object", "properties": {"name": {"type": "string", "enum": [function["name"]]},
                           "parameters": function.get("parameters") or {"type": "object", "properties": {}}},
            "required": ["name", "parameters"], "additionalProperties": False}


def _tool_call_constraint(req: ChatCompletionRequest) -> dict[str, Any] | None:
    """function_call/utils.get_json_schema_constraint: a forced tool choice ("required", or a named function) is
    constrained to a JSON array of {name, parameters}, with or without a tool-call parser (serving_chat.
    _process_messages' fallback); None for "auto"/"none"."""
    if not req.tools or req.tool_choice in (None, "auto", "none"):
        return None
    functions = [t["function"] for t in req.tools]
    if req.tool_choice == "required":
        items = {"type": "object", "anyOf": [_tool_schema(f) for f in functions]}
    else:
        items = _tool_schema(next(f for f in functions if f["name"] == req.tool_choice["function"]["name"]))
    return {"type": "array", "minItems": 1, "items": items, **({} if req.parallel_tool_calls else {"maxItems": 1})}


def _grammar(json_schema: str | None, regex: str | None, ebnf: str | None) -> dict[str, Any]:
    """The same constraint in llama.cpp's terms: schemas as llguidance JSON, regexes as llguidance, EBNF as GBNF."""
    if json_schema is not None:
        return {"grammar": "%llguidance {}\nstart: %json " + json_schema}
    if regex is not None:
        return {"grammar": "%llguidance {}\nstart: /" + regex.replace("/", "\\/") + "/"}
    if ebnf is not None:
        return {"grammar": ebnf}
    return {}


class _Done(msgspec.Struct):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish: dict[str, Any]


class SGLangTestServer:
    """Serves SGLang's API on a free loopback port (or `port`), generating with the llama.cpp server at `llama_url`,
    or with the scripted model when it is None.

    Flags as SGLang's: `tool_call_parser` (--tool-call-parser: forced tool calls come back as `tool_calls`, else as
    content), `enable_cache_report` (--enable-cache-report: /v1 usage reports cached tokens). `health_delay_s`: how
    long /health takes (SGLang's runs a one-token generation, then polls for it once a second); `loading_s`: how long
    after start /health answers 503 (ServerStatus.Starting)."""

    def __init__(self, llama_url: str | None, model_path: str = "smollm2", *, port: int | None = None,
                 tool_call_parser: str | None = None, enable_cache_report: bool = False, health_delay_s: float = 1.0,
                 loading_s: float = 0.0, token_s: float = 0.01, script: str | None = None) -> None:
        self.llama_url = llama_url
        self.model_path = model_path
        self.tool_call_parser = tool_call_parser
        self.enable_cache_report = enable_cache_report
        self.health_delay_s = health_delay_s
        self.loading_s = loading_s
        self.token_s = token_s
        self.script = script
        self.requests: list[tuple[str, Any]] = []
        self.aborted: dict[str, str] = {}
        self.tokens: dict[str, int] = {}
        self._faults: list[tuple[int | None, float, bool]] = []
        self._abort_events: dict[str, asyncio.Event] = {}
        # The scripted model's "radix cache": distinct prompts, the least recently used dropped past a bound (as
        # SGLang's cache evicts). Unbounded, the scan of every earlier prompt grew with each request until, in a
        # 10-minute soak at 20 calls a second, this server stalled and every run hit its deadline.
        self._prompts: OrderedDict[str, None] = OrderedDict()
        self._started_at = time.monotonic()
        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def inject(self, *, status: int | None = None, delay_s: float = 0.0, times: int = 1,
               malformed: bool = False) -> None:
        """The next `times` requests to /generate or /v1/chat/completions wait `delay_s`, then answer `status`
        (an SGLang-shaped error), a 200 that is not JSON (`malformed`: a cut-off body, or a stream whose chunk is
        cut off), or normally."""
        self._faults.extend([(status, delay_s, malformed)] * times)

    async def _fault(self) -> int | str | None:
        """The injected status, "malformed", or None (answer normally)."""
        if not self._faults:
            return None
        status, delay, malformed = self._faults.pop(0)
        if delay:
            await asyncio.sleep(delay)
        return "malformed" if malformed else status

    def server_args(self) -> dict[str, Any]:
        """What /server_info reports: ServerArgs as a dict (http_server.get_server_info), the fields clients read."""
        return {"model_path": self.model_path, "tokenizer_path": self.model_path, "served_model_name": self.model_path,
                "enable_cache_report": self.enable_cache_report, "tool_call_parser": self.tool_call_parser,
                "incremental_streaming_output": False, "version": "test"}

    # ---- generation: yields the text so far after each token, then a _Done -------------------------------------

    async def _run(self, client: httpx.AsyncClient, prompt: str, params: SamplingParams,
                   rid: str) -> AsyncIterator[str | _Done]:
        aborted = self._abort_events.setdefault(rid, asyncio.Event())
        self.tokens[rid] = 0
        source = self._llama(client, prompt, params, rid) if self.llama_url else self._scripted(prompt, params, rid)
        try:
            async for item in source:
                if aborted.is_set():
                    # scheduler: an aborted request finishes with FINISH_ABORT, reported as finish_reason abort.
                    yield _Done(0, 0, self.tokens[rid], {"type": "abort", "message": "Abort in running batch."})
                    return
                yield item
        finally:
            self._abort_events.pop(rid, None)

    async def _scripted(self, prompt: str, params: SamplingParams, rid: str) -> AsyncIterator[str | _Done]:
        # ~4 characters a token; the longest prefix shared with an earlier prompt counts as cached (the radix cache).
        shared = len(prompt) if prompt in self._prompts else max(
            (len(_common_prefix(prompt, p)) for p in self._prompts), default=0)
        self._prompts[prompt] = None
        self._prompts.move_to_end(prompt)
        if len(self._prompts) > _CACHED_PROMPTS:
            self._prompts.popitem(last=False)
        limit = params.max_new_tokens if params.max_new_tokens is not None else 128
        pieces = [self.script[i:i + 4] for i in range(0, len(self.script), 4)] if self.script is not None else None
        text = ""
        for n in range(limit):
            if pieces is not None and n == len(pieces):  # the script said: the model stops (EOS)
                yield _Done(len(prompt) // 4 + 1, shared // 4, n, {"type": "stop", "matched": 151645})
                return
            await asyncio.sleep(self.token_s)
            text += pieces[n] if pieces is not None else "la "
            self.tokens[rid] += 1
            yield text
        yield _Done(len(prompt) // 4 + 1, shared // 4, limit, {"type": "length", "length": limit})

    async def _llama(self, client: httpx.AsyncClient, prompt: str, params: SamplingParams,
                     rid: str) -> AsyncIterator[str | _Done]:
        body: dict[str, Any] = {"prompt": prompt, "n_predict": params.max_new_tokens
                                if params.max_new_tokens is not None else -1,
                                "temperature": params.temperature, "top_p": params.top_p, "cache_prompt": True,
                                "stream": True}
        if params.stop:
            body["stop"] = [params.stop] if isinstance(params.stop, str) else params.stop
        body.update(_grammar(params.json_schema, params.regex, params.ebnf))
        text, last = "", {}
        async with client.stream("POST", f"{self.llama_url}/completion", json=body, timeout=600) as reply:
            async for line in reply.aiter_lines():
                if not line.startswith("data:"):
                    continue
                last = json.loads(line[5:])
                if last.get("content"):
                    text += last["content"]
                    self.tokens[rid] += 1
                    yield text
                if last.get("stop"):
                    break
        timings = last.get("timings", {})
        cached = int(timings.get("cache_n", 0))
        predicted = int(last.get("tokens_predicted", self.tokens[rid]))
        if last.get("stop_type") == "limit":
            finish = {"type": "length", "length": predicted}
        else:
            finish = {"type": "stop", "matched": last.get("stopping_word") or 151645}
        yield _Done(cached + int(timings.get("prompt_n", 0)), cached, predicted, finish)

    def _reply(self, text: str, done: _Done | None, rid: str, started: float) -> dict[str, Any]:
        """One /generate reply, or one streamed chunk (tokenizer_manager._handle_batch_output): the whole text so far
        (not a delta, unless --incremental-streaming-output) and meta_info; finish_reason is null until the end."""
        return {
            "text": text,
            "output_ids": [],
            "meta_info": {
                "id": rid, "finish_reason": done.finish if done else None,
                "prompt_tokens": done.prompt_tokens if done else 0, "weight_version": "default",
                "completion_tokens": done.completion_tokens if done else self.tokens.get(rid, 0),
                "cached_tokens": done.cached_tokens if done else 0, "e2e_latency": time.perf_counter() - started,
            },
        }

    async def _complete(self, client: httpx.AsyncClient, prompt: str, params: SamplingParams,
                        rid: str) -> dict[str, Any]:
        started, text, done = time.perf_counter(), "", None
        async for item in self._run(client, prompt, params, rid):
            if isinstance(item, _Done):
                done = item
            else:
                text = item
        return self._reply(text, done, rid, started)

    async def _complete_watching(self, client: httpx.AsyncClient, request: Request, prompt: str, params: SamplingParams,
                                 rid: str) -> dict[str, Any] | None:
        """A non-streamed request: its client leaving is noticed only at the next 4 s poll, then it is aborted
        (tokenizer_manager._wait_one_response)."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        work = asyncio.create_task(self._complete(client, prompt, params, rid))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
                if done:
                    return work.result()
                if gone.is_set():
                    self.aborted.setdefault(rid, "disconnected")
                    work.cancel()
                    return None
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()

    # ---- the OpenAI-compatible route (needs llama.cpp) -----------------------------------------------------------

    def _usage(self, usage: dict[str, Any] | None) -> dict[str, Any] | None:
        """usage_processor: prompt_tokens_details.cached_tokens only with --enable-cache-report."""
        if usage is None or self.enable_cache_report:
            return usage
        return {k: v for k, v in usage.items() if k != "prompt_tokens_details"}

    async def _tool_calls(self, client: httpx.AsyncClient, body: dict[str, Any],
                          req: ChatCompletionRequest) -> Response:
        """A forced tool choice, as SGLang answers it: the reply is constrained to the call array; only a server with
        a tool-call parser turns it into `tool_calls` (serving_chat._build_chat_response / _process_tool_calls run
        only `if ... self.tool_call_parser`); without one the array is the message content and finish_reason stop."""
        body = {**body, "stream": False, **_grammar(json.dumps(_tool_call_constraint(req)), None, None)}
        body.pop("stream_options", None)
        reply = (await client.post(f"{self.llama_url}/v1/chat/completions", json=body, timeout=600)).json()
        content = reply["choices"][0]["message"]["content"]
        usage = self._usage(reply.get("usage"))
        base = {"id": reply["id"], "created": reply["created"], "model": req.model}
        if self.tool_call_parser:
            calls = [{"index": i, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": c["name"], "arguments": json.dumps(c["parameters"])}}
                     for i, c in enumerate(json.loads(content))]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            deltas, finish = [{"tool_calls": [c]} for c in calls], "tool_calls"
        else:
            message, deltas, finish = {"role": "assistant", "content": content}, [{"content": content}], "stop"
        if not req.stream:
            return Response({**base, "object": "chat.completion", "usage": usage,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
        chunks = [{"role": "assistant", "content": ""}, *deltas]
        lines = [{**base, "object": "chat.completion.chunk",
                  "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in chunks]
        lines.append({**base, "object": "chat.completion.chunk",
                      "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (req.stream_options or {}).get("include_usage"):
            lines.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        payload = "".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n"
        return Response(payload.encode(), media_type="text/event-stream")

    def app(self) -> Litestar:
        test_server = self
        state: dict[str, httpx.AsyncClient] = {}

        @post("/generate", status_code=200)
        async def generate(request: Request) -> Response:
            raw = await request.body()
            try:
                req = msgspec.json.decode(raw, type=GenerateReqInput)
            except msgspec.ValidationError as exc:
                return Response({"detail": [{"msg": str(exc)}]}, status_code=422)  # FastAPI's request validation
            test_server.requests.append(("/generate", json.loads(raw)))
            status = await test_server._fault()
            if status == "malformed":
                if req.stream:  # a chunk cut off mid-JSON, as a proxy or a crashing server can leave it
                    return Stream(iter([b'data: {"text": "la la", "meta_info": {"id": \n\n']),
                                  media_type="text/event-stream")
                return Response(b'{"text": "la la", "meta_', media_type="application/json")
            if status is not None:
                return _error(f"injected fault {status}", status)
            if req.text is None:
                return _error("Either text, input_ids or input_embeds should be provided.")
            texts = [req.text] if isinstance(req.text, str) else req.text
            raw_params = req.sampling_params or {}
            params_list = raw_params if isinstance(raw_params, list) else [raw_params] * len(texts)
            if len(params_list) != len(texts):
                return _error("The length of sampling_params should be the same as the batch size.")
            try:
                params = [SamplingParams(**p) for p in params_list]
            except TypeError:
                return _internal_error()
            try:
                for p in params:
                    p.verify()
            except ValueError as exc:
                return _error(str(exc))
            rid = req.rid if isinstance(req.rid, str) else uuid.uuid4().hex
            client = state["client"]
            if isinstance(req.text, list):
                if req.stream:
                    return _error("the test server does not imitate streamed batches")
                rids = req.rid if isinstance(req.rid, list) else [f"{rid}_{i}" for i in range(len(texts))]
                batch = zip(texts, params, rids, strict=True)
                return Response(await asyncio.gather(*(test_server._complete(client, t, p, r) for t, p, r in batch)))
            if not req.stream:
                out = await test_server._complete_watching(client, request, req.text, params[0], rid)
                return Response(out) if out is not None else _error("Request is disconnected from the client side.")

            async def stream() -> AsyncIterator[bytes]:
                # http_server.generate_request: `data: {json}` per output, `data: [DONE]` at the end; a client that
                # leaves cancels the stream and its background abort task aborts the request.
                started, text = time.perf_counter(), ""
                try:
                    async for item in test_server._run(client, req.text, params[0], rid):
                        if isinstance(item, _Done):
                            reply = test_server._reply(text, item, rid, started)
                            yield b"data: " + json.dumps(reply).encode() + b"\n\n"
                        else:
                            text = item
                            reply = test_server._reply(text, None, rid, started)
                            yield b"data: " + json.dumps(reply).encode() + b"\n\n"
                    yield b"data: [DONE]\n\n"
                except asyncio.CancelledError:
                    test_server.aborted.setdefault(rid, "disconnected")
                    raise

            return Stream(stream(), media_type="text/event-stream")

        @post("/abort_request", status_code=200)
        async def abort_request(request: Request) -> Response:
            # http_server.abort_request → tokenizer_manager.abort_request: 200 whether or not the rid is running.
            body = json.loads(await request.body())
            test_server.requests.append(("/abort_request", body))
            rid = body.get("rid", "")
            if rid in test_server._abort_events:
                test_server.aborted.setdefault(rid, "abort_request")
                test_server._abort_events[rid].set()
            return Response(b"", status_code=200)

        @post("/v1/chat/completions", status_code=200)
        async def chat(request: Request) -> Response:
            raw = await request.body()
            try:
                req = msgspec.json.decode(raw, type=ChatCompletionRequest)
            except msgspec.ValidationError as exc:
                return _openai_error(str(exc))
            test_server.requests.append(("/v1/chat/completions", json.loads(raw)))
            status = await test_server._fault()
            if status == "malformed":
                return Response(b'{"id": "chatcmpl-1", "choices": [', media_type="application/json")
            if status is not None:
                return _openai_error(f"injected fault {status}", status)
            if test_server.llama_url is None:
                return _openai_error("the scripted model serves /generate only", 501)
            if not req.messages:
                return _openai_error("Messages cannot be empty.")
            body: dict[str, Any] = {"messages": req.messages, "stream": req.stream}
            for name in ("max_tokens", "temperature", "top_p", "stop", "stream_options"):
                if getattr(req, name) is not None:
                    body[name] = getattr(req, name)
            schema = None
            if req.response_format and req.response_format.get("type") == "json_schema":
                spec = req.response_format.get("json_schema") or {}
                if spec.get("schema") is None:
                    return _openai_error("schema_ is required for json_schema response format request.")
                schema = json.dumps(spec["schema"])
            if sum(x is not None for x in (schema, req.regex, req.ebnf)) > 1:
                return _openai_error("Only one of regex, json_schema, or ebnf can be set.")
            body.update(_grammar(schema, req.regex, req.ebnf))
            client = state["client"]
            if _tool_call_constraint(req) is not None:
                return await test_server._tool_calls(client, body, req)
            if not req.stream:
                reply = await client.post(f"{test_server.llama_url}/v1/chat/completions", json=body, timeout=600)
                answer = reply.json()
                if "usage" in answer:
                    answer["usage"] = test_server._usage(answer["usage"])
                return Response(answer, status_code=reply.status_code)

            async def relay() -> AsyncIterator[bytes]:
                async with client.stream("POST", f"{test_server.llama_url}/v1/chat/completions", json=body,
                                         timeout=600) as reply:
                    async for line in reply.aiter_lines():
                        if line.startswith("data:") and line[5:].strip() != "[DONE]":
                            chunk = json.loads(line[5:])
                            if chunk.get("usage") is not None:
                                chunk["usage"] = test_server._usage(chunk["usage"])
                            line = f"data: {json.dumps(chunk)}"
                        if line:
                            yield (line + "\n\n").encode()

            return Stream(relay(), media_type="text/event-stream")

        @get(["/health", "/health_generate"], status_code=200)
        async def health() -> Response:
            # http_server.health_generate: 503 while the server is starting; otherwise a one-token generation, then a
            # poll for its output once a second (so never faster than a second).
            if time.monotonic() - test_server._started_at < test_server.loading_s:
                return Response(b"", status_code=503)
            await asyncio.sleep(test_server.health_delay_s)
            return Response(b"", status_code=200)

        @get(["/model_info", "/get_model_info"])
        async def model_info() -> dict:
            return {"model_path": test_server.model_path, "tokenizer_path": test_server.model_path,
                    "is_generation": True, "preferred_sampling_params": None, "weight_version": "default"}

        @get(["/server_info", "/get_server_info"])
        async def server_info() -> dict:
            return test_server.server_args()

        @get("/_test/state")
        async def test_state() -> dict:
            return {"requests": test_server.requests, "aborted": test_server.aborted, "tokens": test_server.tokens}

        @post("/_test/inject", status_code=200)
        async def test_inject(data: JSONBody[dict[str, Any]]) -> dict:
            test_server.inject(**data)
            return {"faults": len(test_server._faults)}

        async def start(_: Litestar) -> None:
            test_server._started_at = time.monotonic()
            state["client"] = httpx.AsyncClient()

        async def stop(_: Litestar) -> None:
            await state["client"].aclose()

        return Litestar([generate, abort_request, chat, health, model_info, server_info, test_state, test_inject],
                        on_startup=[start], on_shutdown=[stop])

    def __enter__(self) -> SGLangTestServer:
        self._server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the SGLang test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


_CACHED_PROMPTS = 256


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if x != y:
            break
        n += 1
    return a[:n]


FAST_RETRY = RetryPolicy(initial_s=0.05)
"""Retries that keep a test's injected faults quick."""


@contextlib.asynccontextmanager
async def native_backend(server: SGLangTestServer, model: str) -> AsyncIterator[SGLangBackend]:
    """A native-API client of `server` retrying quickly, the server's recorded requests cleared first; closed at the
    end."""
    server.requests.clear()
    backend = SGLangBackend(server.url, model, policy=FAST_RETRY)
    try:
        yield backend
    finally:
        await backend.aclose()


def main() -> None:
    """Serve SGLang's API in this process (tests kill it): `python -m tests.sglang_server PORT` generates with
    SmolLM2; `--scripted` with the scripted model (no model file, starts in about a second)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--scripted", action="store_true")
    parser.add_argument("--token-s", type=float, default=0.01)
    parser.add_argument("--script", help="the scripted model's reply to every prompt (default: 'la ' per token)")
    # SGLang's /health takes a second or more; half a second by default here keeps probes with a one-second timeout
    # (test_expert_failover's) working. Pass 1 to be exact.
    parser.add_argument("--health-delay-s", type=float, default=0.5)
    args = parser.parse_args()
    llama_url = None
    if not args.scripted:
        from stepwise.app.modelfiles import smollm2_path
        from stepwise.reasoning.backends.local import EmbeddedLlama

        llama = EmbeddedLlama(str(smollm2_path()), threads=1)
        llama_url = llama.base_url
    # A model path that names no Hugging Face repository: sglang-router loads the tokenizer of the model_path a worker
    # reports, and would otherwise go looking for "smollm2" online.
    model_path = "smollm2" if llama_url else "/nonexistent/scripted-model"
    server = SGLangTestServer(llama_url, model_path, port=args.port, token_s=args.token_s,
                              health_delay_s=args.health_delay_s, script=args.script)
    uvicorn.Server(uvicorn.Config(server.app(), host="127.0.0.1", port=server.port, log_level="warning")).run()


if __name__ == "__main__":
    main()
