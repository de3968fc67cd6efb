"""OpenAI-compatible routes: `POST /v1/chat/completions` and `GET /v1/models`.

`model: "stepwise"` runs the whole system on the last user message (earlier messages are its context); an expert's
name talks to that expert directly. With `tools`, the reply's `tool_calls` are decoded under the caller's function
schemas, for the caller to execute. Every reply is a recorded run: its id is the body's `id` and the
`X-Stepwise-Run-Id` header."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from stepwise.app.openapi import JSON_BODY, error, guarded, run_failures
from stepwise.app.runtime import Runtime
from stepwise.app.status import status_for
from stepwise.app.streaming import Channel, Text, unless_gone
from stepwise.reasoning import events as ev
from stepwise.reasoning.functions import tool_results, written_calls
from stepwise.reasoning.options import ChatOptions
from stepwise.reasoning.report import RunReport
from stepwise.reasoning.types import Answer, Function, JsonSchema, Message

SYSTEM_MODEL = "stepwise"
RUN_HEADER = "X-Stepwise-Run-Id"


class TextPart(msgspec.Struct):
    type: Literal["text"]
    text: str


class ChatMessage(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionSpec(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = {}
    strict: bool | None = None


class ChatTool(msgspec.Struct):
    type: Literal["function"]
    function: FunctionSpec


class ChosenFunction(msgspec.Struct):
    name: str


class NamedToolChoice(msgspec.Struct):
    type: Literal["function"]
    function: ChosenFunction


class JsonSchemaFormat(msgspec.Struct):
    name: str = "response"
    schema: dict[str, Any] = {}
    strict: bool | None = None


class ResponseFormat(msgspec.Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct):
    """OpenAI's request body. Fields OpenAI defines that stepwise does not use (sampling knobs, `user`, …) are
    accepted and ignored: runs decode at temperature 0."""

    model: str
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=8192)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=8192)] | None = None
    response_format: ResponseFormat | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] = 1
    """One choice per request: a run answers once."""


class _Turn(msgspec.Struct):
    """What a chat request asks for, resolved: the conversation, and how it is answered (`options.target` None:
    by the whole system, unless there are functions or a response_format)."""

    messages: list[Message]
    options: ChatOptions


def _text(message: ChatMessage, index: int) -> str:
    if isinstance(message.content, list):
        return "".join(part.text for part in message.content)
    if message.content is None and message.role != "assistant":
        raise ValidationException(detail=f"messages[{index}].content: a {message.role} message needs content")
    return message.content or ""


def _messages(request: ChatRequest) -> list[Message]:
    """OpenAI's roles onto the three every chat template knows; tool traffic as the chat template writes it (calls as
    `<tool_call>` blocks, consecutive results as one user turn of `<tool_response>` blocks), the format the model
    writes its own calls in."""
    out: list[Message] = []
    results: list[str] = []
    for i, m in enumerate(request.messages):
        text = _text(m, i)
        if m.role == "tool":
            results.append(text)
            continue
        if results:
            out.append(Message("user", tool_results(results)))
            results = []
        if m.role in ("system", "developer"):
            out.append(Message("system", text))
        elif m.role == "assistant" and m.tool_calls:
            functions = [c.get("function", {}) for c in m.tool_calls]
            calls = [(str(f.get("name")), str(f.get("arguments") or "{}")) for f in functions]
            out.append(Message("assistant", written_calls(text, calls)))
        else:
            out.append(Message(m.role, text))
    if results:
        out.append(Message("user", tool_results(results)))
    if not any(m.role == "user" for m in out):
        raise ValidationException(detail="messages: at least one user message is needed (the last one is the question)")
    return out


def question_from(messages: list[Message]) -> str:
    """The last user message is the question; what came before it is given as its context."""
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    if last == 0:
        return messages[0].content
    context = "\n".join(f"{m.role}: {m.content}" for m in messages[:last])
    return f"Conversation so far:\n{context}\n\nQuestion: {messages[last].content}"


def resolve(request: ChatRequest, runtime: Runtime) -> _Turn:
    experts = runtime.router.experts
    if request.model != SYSTEM_MODEL and request.model not in experts:
        raise ValidationException(detail=f"model: {request.model!r} is not served here (models: "
                                         f"{', '.join([SYSTEM_MODEL, *experts])})")
    functions = [Function(t.function.name, t.function.description, t.function.parameters) for t in request.tools or []]
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise ValidationException(detail=f"tools: function names must be unique, got {names}")
    choice = request.tool_choice or ("auto" if functions else "none")
    if choice != "none" and not functions:
        raise ValidationException(detail="tool_choice: there are no tools to choose from")
    if isinstance(choice, NamedToolChoice):
        functions = [f for f in functions if f.name == choice.function.name]
        if not functions:
            raise ValidationException(detail=f"tool_choice: no tool is named {choice.function.name!r}")
    constraint = _output_constraint(request.response_format)
    if constraint is not None and choice != "none":
        raise ValidationException(detail="response_format: a JSON reply and tool calls in one turn are not "
                                         "supported; send one or the other")
    return _Turn(_messages(request), ChatOptions(
        constraint=constraint,
        target=None if request.model == SYSTEM_MODEL else request.model,
        functions=tuple(functions) if choice != "none" else (),
        require_call=choice == "required" or isinstance(choice, NamedToolChoice),
        parallel_calls=request.parallel_tool_calls,
        max_tokens=request.max_completion_tokens or request.max_tokens,
    ))


def _output_constraint(fmt: ResponseFormat | None) -> JsonSchema | None:
    """OpenAI's response_format as a constraint the reply is decoded under (text: none)."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return JsonSchema("json_object", {"type": "object"})
    if fmt.json_schema is None:
        raise ValidationException(detail="response_format.json_schema: required when "
                                         "response_format.type is json_schema")
    return JsonSchema(fmt.json_schema.name, fmt.json_schema.schema or {"type": "object"})


async def _run(runtime: Runtime, turn: _Turn, run_id: uuid.UUID, *extra, on_text=None) -> RunReport:
    """The whole system for a plain question; one expert call for a turn with tools (two for one call among several
    functions: the function first) or a response_format."""
    options = turn.options
    if options.target is None and not options.functions and options.constraint is None:
        return await runtime.ask(question_from(turn.messages), None, *extra, run_id=run_id)
    return await runtime.chat(turn.messages, *extra, options=options, on_text=on_text, run_id=run_id)


def _tool_calls(answer: Answer) -> list[dict]:
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": msgspec.json.encode(c.arguments).decode()}}
            for c in answer.tool_calls]


def _usage(report: RunReport) -> dict:
    u = report.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def _error(report: RunReport) -> ErrorReply:
    assert report.error is not None
    return ErrorReply(ErrorDetail(report.error.message, report.error.type, report.error.type), str(report.run_id))


def _finish_reason(report: RunReport) -> str:
    if report.answer and report.answer.tool_calls:
        return "tool_calls"
    return "length" if report.answer and report.answer.cut_off else "stop"


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorReply(msgspec.Struct):
    """A failed run as OpenAI's clients expect an error; `id` is the run (GET /v1/runs/{id})."""

    error: ErrorDetail
    id: str


@post("/v1/chat/completions", status_code=200, responses=guarded("/v1/chat/completions", {
    **JSON_BODY,
    400: error("The body does not decode into the request type (the detail names the field), or the request asks "
               "for what cannot be served: an unknown model or tool, a tool_choice without tools…"),
    **run_failures(ErrorReply, "OpenAI's error object, `error.type` the error type, `id` the run"),
}))
async def chat_completions(data: JSONBody[ChatRequest], request: Request,
                           runtime: NamedDependency[Runtime]) -> Response:
    """OpenAI's chat completions: `model` "stepwise" (the whole system) or an expert's name (that expert alone);
    `tools`/`tool_choice`/`parallel_tool_calls` as OpenAI defines them; `stream` for `chat.completion.chunk` events."""
    turn = resolve(data, runtime)
    run_id = uuid.uuid4()
    headers = {RUN_HEADER: str(run_id)}
    if data.stream:
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        return ServerSentEvent(_chunks(runtime, turn, run_id, data.model, include_usage), headers=headers)
    report = await unless_gone(request, _run(runtime, turn, run_id))
    if report is None:
        return Response(b"", status_code=499, headers=headers)  # the client went away; the trace has the cancelled run
    if report.error is not None:
        return Response(_error(report), status_code=status_for(report), headers=headers)
    answer = report.answer or Answer(text="")
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = _tool_calls(answer)
    body = {"id": str(run_id), "object": "chat.completion", "created": int(report.started_at or time.time()),
            "model": data.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(report), "logprobs": None}],
            "usage": _usage(report)}
    return Response(body, headers=headers)


async def _chunks(runtime: Runtime, turn: _Turn, run_id: uuid.UUID, model: str,
                  include_usage: bool) -> AsyncIterator[ServerSentEventMessage]:
    """Text as the expert writes it (for a direct chat), else the answer when it is composed; the run's progress as SSE
    comments in between (clients skip them; they show a long run is alive); `[DONE]` last."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> ServerSentEventMessage:
        body = {"id": str(run_id), "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return ServerSentEventMessage(data=msgspec.json.encode(body).decode())

    streamed_text = turn.options.target is not None and not turn.options.functions
    channel = Channel()
    yield chunk({"role": "assistant", "content": ""})
    def start(sink: Channel) -> Coroutine[Any, Any, RunReport]:
        return _run(runtime, turn, run_id, sink, on_text=sink.text if streamed_text else None)

    async for item in channel.follow(start):
        match item:
            case Text():
                yield chunk({"content": str(item)})
            case ev.AnswerReady(answer=answer) if answer.tool_calls:
                calls = [{"index": i, **call} for i, call in enumerate(_tool_calls(answer))]
                yield chunk({"tool_calls": calls})
            case ev.AnswerReady(answer=answer) if not streamed_text:
                yield chunk({"content": answer.text})
            case ev.StepFinished(step_id=sid, target=target):
                yield ServerSentEventMessage(data=None, comment=f"step {sid} ({target}) finished")
            case ev.StepFailed(step_id=sid, target=target):
                yield ServerSentEventMessage(data=None, comment=f"step {sid} ({target}) failed")
            case RunReport() as report if report.error is not None:
                yield ServerSentEventMessage(data=msgspec.json.encode(_error(report)).decode())
            case RunReport() as report:
                yield chunk({}, _finish_reason(report))
                if include_usage:
                    body = {"id": str(run_id), "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [], "usage": _usage(report)}
                    yield ServerSentEventMessage(data=msgspec.json.encode(body).decode())
    yield ServerSentEventMessage(data="[DONE]")


@get("/v1/models", responses=guarded("/v1/models", {}))
async def list_models(runtime: NamedDependency[Runtime]) -> dict:
    """The models a chat completion may name: `stepwise` (the whole system) and each expert."""
    started = int(runtime.started_at)
    data = [{"id": SYSTEM_MODEL, "object": "model", "created": started, "owned_by": "stepwise"}]
    for name, expert in runtime.router.experts.items():
        data.append({"id": name, "object": "model", "created": started, "owned_by": expert.backend.provider})
    return {"object": "list", "data": data}
