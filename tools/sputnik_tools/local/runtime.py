"""Lambda's runtime, emulated in-process: a function's handler loaded lazily, its context, its log lines."""

import asyncio
import contextlib
import contextvars
import importlib.util
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        """ARN of the invoked function."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        """Always $LATEST locally."""
        return "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        """Local invocations have no deadline; report Lambda's maximum."""
        return 900_000


@dataclass
class LocalFunction:
    """A function of the template, loaded lazily (its first call is its cold start)."""

    logical_id: str
    name: str
    code_dir: Path
    handler_spec: str
    # The template's Timeout and MemorySize (Lambda's defaults: 3 s, 128 MB).
    timeout: float = 3.0
    memory_mb: int = 128
    _handler: Handler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> Handler:
        """Import the function's module once and return its handler."""
        with self._lock:
            if self._handler is None:
                module_name, attr = self.handler_spec.rsplit(".", 1)
                path = self.code_dir / (module_name.replace(".", "/") + ".py")
                spec = importlib.util.spec_from_file_location(f"sputnik_functions.{self.logical_id}", path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module: ModuleType = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._handler = getattr(module, attr)
            assert self._handler is not None
            return self._handler

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on an event, as Lambda would."""
        if getattr(_thread_loops, "loop", None) is None:
            # Lambda runs handlers on a thread that has an event loop; Mangum expects one.
            _thread_loops.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(_thread_loops.loop)
        context = LambdaContext(self.name, self.memory_mb)
        with invocation(context):
            return self.handler()(event, context)


_thread_loops = threading.local()
# Function name -> function: moto's Lambda model is process-wide, so its invocations find them here.
FUNCTIONS: dict[str, LocalFunction] = {}


@contextlib.contextmanager
def invocation(context: LambdaContext) -> Iterator[None]:
    """Run what follows as one invocation of a function: its log records carry that function's context."""
    token = _invocation.set(context)
    try:
        yield
    finally:
        _invocation.reset(token)


# The invocation running on this thread: its log records carry that function's context.
_invocation: contextvars.ContextVar[LambdaContext | None] = contextvars.ContextVar("invocation", default=None)


def _stamp_function(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Wrap a log record factory so that records name the function whose invocation made them.

    Deployed, each function logs from its own process; here all share one, and Powertools' keys
    (function_name, ...) are process-wide, so every line would bear the last decorated function's.
    Records made outside any invocation (the stack, the front) are the local stack's own.
    """

    def stamped(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        context = _invocation.get()
        record.function_name = context.function_name if context else "local"
        # None drops the key from Powertools' lines.
        record.function_arn = context.invoked_function_arn if context else None
        record.function_request_id = context.aws_request_id if context else None
        record.function_memory_size = context.memory_limit_in_mb if context else None
        return record

    stamped._sputnik = True  # type: ignore[attr-defined]
    return stamped


def stamp_log_records() -> None:
    """Label every log record made during an invocation with its function (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_sputnik", False):
        logging.setLogRecordFactory(_stamp_function(factory))
