"""User-defined tools: decorate a Python function; its typed parameters become the tool's argument schema.

    @tool
    def convert(amount: float, rate: Annotated[float, msgspec.Meta(gt=0)] = 1.0) -> float:
        '''converts an amount at a rate'''
        return amount * rate

The arguments a plan gives the tool are decoded under that schema before the function is called; a sync function
runs in a worker thread so it never stalls the event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import msgspec


class FunctionTool:
    def __init__(self, fn: Callable[..., Any], name: str, description: str, args_type: type[msgspec.Struct],
                 deterministic: bool, result_type: Any = None):
        self.fn = fn
        self.result_type = result_type  # the return annotation, which the result_type verifier checks
        self.name = name
        self.description = description
        self.args_type = args_type
        self.deterministic = deterministic

    async def run(self, args: Any) -> Any:
        kwargs = msgspec.structs.asdict(args)
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**kwargs)
        else:
            result = await asyncio.to_thread(self.fn, **kwargs)
        return msgspec.to_builtins(result)  # results travel as JSON: into the trace and into later steps

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)  # still callable as the plain function


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         deterministic: bool = False):
    """Turn a function into a Tool. `deterministic=True` lets the recompute verifier check its results."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        hints = get_type_hints(f, include_extras=True)
        fields: list[tuple] = []
        for pname, param in inspect.signature(f).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {f.__name__}: *args and **kwargs cannot become a schema")
            if pname not in hints:
                raise TypeError(f"tool {f.__name__}: parameter {pname!r} needs a type annotation")
            fields.append((pname, hints[pname]) if param.default is param.empty
                          else (pname, hints[pname], param.default))
        tool_name = name or f.__name__
        args_type = msgspec.defstruct(f"{tool_name}_args", fields, forbid_unknown_fields=True, kw_only=True)
        doc = description or (inspect.getdoc(f) or "").split("\n", 1)[0] or tool_name
        return FunctionTool(f, tool_name, doc, args_type, deterministic, hints.get("return"))

    return wrap(fn) if fn is not None else wrap
