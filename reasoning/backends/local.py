"""The embedded model: llama.cpp's server running in-process (xllamacpp), spoken to over loopback HTTP.

Going through llama.cpp's own HTTP endpoint rather than its in-process call keeps one client for every
OpenAI-compatible server and makes a cancelled step stop generating: closing the request frees the slot.
"""

from __future__ import annotations

import json
from typing import Any

from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.types import Constraint, Grammar, JsonSchema, Regex


class LlamaCppBackend(OpenAICompatBackend):
    """llama.cpp's server. JSON schemas go as llguidance grammars with whitespace switched off: its
    `response_format` path lets the model spend tokens (~80 ms each here) on pretty-printing."""

    provider = "llama.cpp"
    health_path = "/health"

    def request_body(self, messages, constraint, sampling, *args, **kwargs) -> dict[str, Any]:
        body = super().request_body(messages, constraint, sampling, *args, **kwargs)
        if sampling.n > 1:
            body["n_cmpl"] = sampling.n  # llama.cpp's name: the prompt is read once, its cache copied to each slot
        return body

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        match constraint:
            case JsonSchema(schema=schema):
                compact = {"x-guidance": {"whitespace_flexible": False}, **schema}
                return {"grammar": "%llguidance {}\nstart: %json " + json.dumps(compact, separators=(",", ":"))}
            case Regex(pattern=pattern):
                return {"grammar": "%llguidance {}\nstart: /" + pattern.replace("/", "\\/") + "/"}
            case Grammar(text=text):
                return {"grammar": text}
        raise TypeError(f"unsupported constraint {constraint!r}")


class EmbeddedLlama:
    """Owns an in-process llama.cpp server for one GGUF file. Loading takes seconds: call from a thread."""

    def __init__(self, model_path: str, *, threads: int = 2, context: int = 8192, parallel: int = 2, name: str = ""):
        # Imported here: loading the native library is only needed when a model runs. From the extension module
        # itself, which xllamacpp's package re-exports with `import *` (a checker cannot follow that into a .so).
        import xllamacpp.xllamacpp as xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = model_path
        params.n_ctx = context
        params.n_parallel = parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.use_jinja = True
        params.verbosity = -1
        self.name = name or model_path.rsplit("/", 1)[-1].removesuffix(".gguf")
        params.model_alias = {self.name}  # replies name the model by this, not by its file path
        self._server = xllamacpp.Server(params)
        self.base_url = self._server.listening_address

    def new_backend(self) -> LlamaCppBackend:
        """A client of its own (for one expert), so closing it leaves the others working."""
        return LlamaCppBackend(self.base_url, self.name)

    def close(self) -> None:
        self._server = None  # the native server stops when its last reference goes
