"""A protocol-faithful SGLang test server: SGLang's routes, field names, reply and error shapes (read from SGLang's
source: srt/entrypoints/http_server.py, srt/managers/io_struct.py GenerateReqInput, srt/sampling/sampling_params.py,
srt/entrypoints/openai/protocol.py), generating with the real local model through llama.cpp.

It is stricter than SGLang in one way: an unknown request field is a 400, so a client test pins its bodies.
Faults can be injected: a number of replies with a given status, or a delay before answering."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream


class SamplingParams(msgspec.Struct, forbid_unknown_fields=True):
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
    no_stop_trim: bool = False

    def verify(self) -> None:
        # SGLang's own check and message (SamplingParams.verify).
        if sum(x is not None for x in (self.json_schema, self.regex, self.ebnf)) > 1:
            raise ValueError("Only one of regex, json_schema, or ebnf can be set.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens is not None and self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be at least 0, got {self.max_new_tokens}.")


class GenerateReqInput(msgspec.Struct, forbid_unknown_fields=True):
    text: str | list[str] | None = None
    input_ids: list[Any] | None = None  # list[int], or list[list[int]] for a batch
    sampling_params: dict[str, Any] | list[dict[str, Any]] | None = None
    rid: str | list[str] | None = None
    return_logprob: Any = None  # bool, or list[bool] for a batch
    stream: bool = False


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=True):
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
    """SGLang's /generate error shape (_create_error_response)."""
    return Response({"error": {"message": message}}, status_code=status)


def _openai_error(message: str, status: int = 400) -> Response:
    """SGLang's flat OpenAI ErrorResponse."""
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return Response({"object": "error", "message": message, "type": kind, "param": None, "code": status}, status_code=status)


def _forced_tools(req: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The functions a reply must call: all of them for tool_choice "required", one when named; None otherwise."""
    if not req.tools or req.tool_choice in (None, "auto", "none"):
        return None
    functions = [t["function"] for t in req.tools]
    if req.tool_choice == "required":
        return functions
    name = req.tool_choice["function"]["name"]
    return [f for f in functions if f["name"] == name]


def _grammar(json_schema: str | None, regex: str | None, ebnf: str | None) -> dict[str, Any]:
    """The same constraint in llama.cpp's terms: schemas as llguidance JSON, regexes as llguidance, EBNF as GBNF."""
    if json_schema is not None:
        return {"grammar": "%llguidance {}\nstart: %json " + json_schema}
    if regex is not None:
        return {"grammar": "%llguidance {}\nstart: /" + regex.replace("/", "\\/") + "/"}
    if ebnf is not None:
        return {"grammar": ebnf}
    return {}


class SGLangTestServer:
    """Serves SGLang's API on a free loopback port, generating with the llama.cpp server at `llama_url`."""

    def __init__(self, llama_url: str, model_path: str = "smollm2") -> None:
        self.llama_url = llama_url
        self.model_path = model_path
        self.requests: list[tuple[str, Any]] = []
        self._faults: list[tuple[int | None, float]] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def inject(self, *, status: int | None = None, delay_s: float = 0.0, times: int = 1) -> None:
        """The next `times` requests to /generate or /v1/chat/completions wait `delay_s`, then answer `status`
        (an SGLang-shaped error) or normally."""
        self._faults.extend([(status, delay_s)] * times)

    async def _fault(self) -> int | None:
        if not self._faults:
            return None
        status, delay = self._faults.pop(0)
        if delay:
            await asyncio.sleep(delay)
        return status

    async def _complete(self, client: httpx.AsyncClient, prompt: str, params: SamplingParams, rid: str) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, "n_predict": params.max_new_tokens if params.max_new_tokens is not None else -1,
                                "temperature": params.temperature, "top_p": params.top_p, "cache_prompt": True}
        if params.stop:
            body["stop"] = [params.stop] if isinstance(params.stop, str) else params.stop
        body.update(_grammar(params.json_schema, params.regex, params.ebnf))
        started = time.perf_counter()
        reply = (await client.post(f"{self.llama_url}/completion", json=body, timeout=600)).json()
        timings = reply.get("timings", {})
        cached = int(timings.get("cache_n", 0))
        predicted = int(reply.get("tokens_predicted", 0))
        if reply.get("stop_type") == "limit":
            finish = {"type": "length", "length": predicted}
        else:
            finish = {"type": "stop", "matched": reply.get("stopping_word") or 151645}
        return {
            "text": reply["content"],
            "output_ids": [],
            "meta_info": {
                "id": rid, "finish_reason": finish, "prompt_tokens": cached + int(timings.get("prompt_n", 0)),
                "weight_version": "default", "num_retractions": 0, "reasoning_tokens": 0,
                "completion_tokens": predicted, "cached_tokens": cached, "e2e_latency": time.perf_counter() - started,
            },
        }

    async def _tool_calls(self, client: httpx.AsyncClient, body: dict[str, Any], functions: list[dict[str, Any]],
                          req: ChatCompletionRequest) -> Response:
        """As SGLang does for a forced tool choice: constrain the reply to an array of {name, parameters} under the
        functions' schemas, then return it as `tool_calls`."""
        item = {"anyOf": [{"type": "object", "properties": {"name": {"const": f["name"]}, "parameters": f.get("parameters", {})},
                           "required": ["name", "parameters"], "additionalProperties": False} for f in functions]}
        array = {"type": "array", "items": item, "minItems": 1, **({} if req.parallel_tool_calls else {"maxItems": 1})}
        body = {**body, "stream": False, **_grammar(json.dumps(array), None, None)}
        body.pop("stream_options", None)
        reply = (await client.post(f"{self.llama_url}/v1/chat/completions", json=body, timeout=600)).json()
        made = json.loads(reply["choices"][0]["message"]["content"])
        calls = [{"index": i, "id": f"call_{i}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["parameters"])}} for i, c in enumerate(made)]
        base = {"id": reply["id"], "created": reply["created"], "model": req.model}
        if not req.stream:
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            return Response({**base, "object": "chat.completion", "usage": reply["usage"],
                             "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]})
        chunks = [{"role": "assistant", "content": ""}, *({"tool_calls": [c]} for c in calls)]
        lines = [{**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in chunks]
        lines.append({**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        if (req.stream_options or {}).get("include_usage"):
            lines.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": reply["usage"]})
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
                return _error(str(exc))
            test_server.requests.append(("/generate", json.loads(raw)))
            status = await test_server._fault()
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
                params = [msgspec.convert(p, SamplingParams) for p in params_list]
                for p in params:
                    p.verify()
            except (msgspec.ValidationError, ValueError) as exc:
                return _error(str(exc))
            rid = req.rid or f"rid-{time.monotonic_ns()}"
            outs = await asyncio.gather(*(
                test_server._complete(state["client"], t, p, rid if len(texts) == 1 else f"{rid}_{i}")
                for i, (t, p) in enumerate(zip(texts, params))
            ))
            return Response(outs[0] if isinstance(req.text, str) else outs)

        @post("/v1/chat/completions", status_code=200)
        async def chat(request: Request) -> Response:
            raw = await request.body()
            try:
                req = msgspec.json.decode(raw, type=ChatCompletionRequest)
            except msgspec.ValidationError as exc:
                return _openai_error(str(exc))
            test_server.requests.append(("/v1/chat/completions", json.loads(raw)))
            status = await test_server._fault()
            if status is not None:
                return _openai_error(f"injected fault {status}", status)
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
            forced = _forced_tools(req)
            if forced is not None:
                return await test_server._tool_calls(client, body, forced, req)
            if not req.stream:
                reply = await client.post(f"{test_server.llama_url}/v1/chat/completions", json=body, timeout=600)
                return Response(reply.json(), status_code=reply.status_code)

            async def relay():
                async with client.stream("POST", f"{test_server.llama_url}/v1/chat/completions", json=body, timeout=600) as reply:
                    async for line in reply.aiter_lines():
                        if line:
                            yield (line + "\n\n").encode()

            return Stream(relay(), media_type="text/event-stream")

        @get("/health", status_code=200)
        async def health() -> Response:
            return Response(b"", status_code=200)

        @get(["/model_info", "/get_model_info"])
        async def model_info() -> dict:
            return {"model_path": test_server.model_path, "tokenizer_path": test_server.model_path,
                    "is_generation": True, "preferred_sampling_params": None, "weight_version": "default"}

        async def start(_: Litestar) -> None:
            state["client"] = httpx.AsyncClient()

        async def stop(_: Litestar) -> None:
            await state["client"].aclose()

        return Litestar([generate, chat, health, model_info], on_startup=[start], on_shutdown=[stop], debug=True)

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


def main() -> None:
    """Serve SmolLM2 behind SGLang's API in this process: `python -m tests.sglang_server PORT` (tests kill it)."""
    import sys

    from app.modelfiles import smollm2_path
    from reasoning.backends.local import EmbeddedLlama

    llama = EmbeddedLlama(str(smollm2_path()), threads=1)
    server = SGLangTestServer(llama.base_url)
    server.port, server.url = int(sys.argv[1]), f"http://127.0.0.1:{sys.argv[1]}"
    uvicorn.Server(uvicorn.Config(server.app(), host="127.0.0.1", port=server.port, log_level="warning")).run()


if __name__ == "__main__":
    main()
