"""Stand template.yaml up in a moto server and run its Lambda functions' Python handlers in-process."""

import asyncio
import contextlib
import contextvars
import copy
import importlib.util
import inspect
import io
import json
import logging
import os
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto import backends as moto_backends
from moto.awslambda.models import LambdaFunction
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3 import notifications as s3_notifications
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker as map_worker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
    resource_eval_s3,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramError
from werkzeug.serving import make_server

from sputnik_tools.template import Route, Template

log = logging.getLogger(__name__)

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


@contextlib.contextmanager
def invocation(context: "LambdaContext") -> Iterator[None]:
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


_thread_loops = threading.local()
# Function name -> function, for the moto patch below (moto's Lambda model is process-wide).
_FUNCTIONS: dict[str, LocalFunction] = {}
_EXPECTED_INVOKE = ["self", "body", "request_headers", "response_headers"]


def _dispatching_invoke(
    self: LambdaFunction, body: str, request_headers: Any, response_headers: Any
) -> bytes | str:
    """Replace moto's Docker-based LambdaFunction.invoke with a call to the real Python handler."""
    function = _FUNCTIONS.get(self.function_name)
    if function is None:
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = json.dumps({"errorMessage": f"no local handler for {self.function_name}"})
    else:
        event = json.loads(body) if body else {}
        try:
            payload = json.dumps(function.invoke(event))
        except Exception as exc:
            log.exception("function %s failed", self.function_name)
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps(
                {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": []}
            )
    if request_headers.get("x-amz-invocation-type", "RequestResponse") == "RequestResponse":
        return payload.encode()
    return payload


def patch_moto_lambda() -> None:
    """Dispatch every moto Lambda invocation (boto3, Step Functions, S3, SNS) to in-process handlers."""
    params = list(inspect.signature(LambdaFunction.invoke).parameters)
    if LambdaFunction.invoke is not _dispatching_invoke and params != _EXPECTED_INVOKE:
        # A private moto API: fail loudly rather than silently echo events when moto changes.
        raise RuntimeError(f"moto's LambdaFunction.invoke changed to {params}; update the local stack")
    LambdaFunction.invoke = _dispatching_invoke  # type: ignore[method-assign]


_last_sequencer = 0
_sequencer_lock = threading.Lock()


def _next_sequencer() -> str:
    """A strictly increasing hex sequencer, like the one S3 puts in every event of a key."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:016X}"


def patch_moto_s3_events() -> None:
    """Give moto's S3 notifications the `sequencer` that real S3 events carry (moto leaves it out)."""
    original = s3_notifications._get_s3_event
    if getattr(original, "_sputnik", False):
        return

    def with_sequencer(*args: Any, **kwargs: Any) -> dict[str, Any]:
        event: dict[str, Any] = original(*args, **kwargs)
        for record in event.get("Records", []):
            record["s3"]["object"].setdefault("sequencer", _next_sequencer())
        return event

    with_sequencer._sputnik = True  # type: ignore[attr-defined]
    s3_notifications._get_s3_event = with_sequencer


_dynamodb_lock = threading.RLock()


def serialize_moto_dynamodb() -> None:
    """Serve moto's DynamoDB requests one at a time.

    moto's TransactWriteItems deep-copies whole tables (to roll back) while other server threads
    write them ("dictionary changed size during iteration"), and a rollback would undo their
    writes; DynamoDB itself isolates transactions. One lock gives moto that isolation.
    """
    original = DynamoHandler.call_action
    if getattr(original, "_sputnik", False):
        return

    def serialized(self: DynamoHandler) -> Any:
        with _dynamodb_lock:
            return original(self)

    serialized._sputnik = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = serialized  # type: ignore[method-assign]


def _table_snapshot(table: Table) -> Any:
    """A table's items as they are now: its item maps copied, the items themselves shared."""
    snapshot = type(table.items)(dict)
    for hash_key, value in table.items.items():
        snapshot[hash_key] = dict(value) if table.has_range_key else value
    return snapshot


def cheap_moto_transactions() -> None:
    """Give moto's TransactWriteItems a rollback that costs what the transaction touches.

    moto backs up by deep-copying each table a transaction names, once per item: an ingest (a scene
    and five metas) copied the meta table five times, so ingest slowed with the catalogue's size
    (3.9 scenes/s at 300 scenes). With DynamoDB calls served one at a time (above), a copy of the
    item maps is an exact backup: writes replace items, and the ones an Update changes in place
    are copied whole. moto's own table copies are made no-ops for the call.
    """
    original = DynamoDBBackend.transact_write_items
    if getattr(original, "_sputnik", False):
        return

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with _dynamodb_lock:
            ops = [op for entry in transact_items for op in entry.values()]
            tables = {
                op["TableName"]: self.tables[op["TableName"]]
                for op in ops
                if op.get("TableName") in self.tables
            }
            saved = {name: _table_snapshot(table) for name, table in tables.items()}
            for op in ops:
                if "Key" in op and op.get("TableName") in tables:
                    item = self.get_item(op["TableName"], op["Key"])
                    if item is not None:  # an Update changes it in place: keep its old state
                        _replace_item(saved[op["TableName"]], tables[op["TableName"]], item)
            Table.__deepcopy__ = lambda table, memo: table  # type: ignore[attr-defined]
            try:
                original(self, transact_items)
            except Exception:
                for name, table in tables.items():
                    self.tables[name] = table
                    table.items = saved[name]
                raise
            finally:
                del Table.__deepcopy__  # type: ignore[attr-defined]

    transact_write_items._sputnik = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _replace_item(snapshot: Any, table: Table, item: Any) -> None:
    """Put a deep copy of `item` in its place in a snapshot of `table`."""
    hash_key = item.hash_key
    if table.has_range_key:
        snapshot[hash_key][item.range_key] = copy.deepcopy(item)
    else:
        snapshot[hash_key] = copy.deepcopy(item)


_EXPECTED_EVAL_JOB = ["self", "env", "job"]
_EXPECTED_PUT_OBJECT = ["env", "resource_runtime_part", "state_credentials"]
_outcomes_lock = threading.Lock()


def _recording_eval_job(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap moto's Map worker so that each item's outcome (input, output or error) is kept on its map run."""

    def eval_job(self: Any, env: Any, job: Any) -> None:
        original(self, env, job)
        outcome: dict[str, Any] = {"Index": job.job_index, "Input": json.dumps(job.job_input)}
        state = env.program_state()
        if isinstance(state, ProgramError) or job.job_output is None:
            details = (state.error if isinstance(state, ProgramError) else None) or {}
            outcome |= {
                "Status": "FAILED",
                "Error": details.get("error") or "States.Timeout",
                "Cause": details.get("cause") or "",
            }
        else:
            outcome |= {"Status": "SUCCEEDED", "Output": json.dumps(job.job_output)}
        record = self._map_run_record
        with _outcomes_lock:
            record.__dict__.setdefault("_sputnik_outcomes", []).append(outcome)

    eval_job._sputnik = True  # type: ignore[attr-defined]
    return eval_job


def _write_results(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    """ResultWriter as AWS has it: SUCCEEDED_0.json and FAILED_0.json beside a manifest that lists them."""
    parameters = env.stack.pop()
    env.stack.pop()  # the items' outputs: the outcomes recorded by the worker say more
    s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(resource_runtime_part, state_credentials)
    record = env.map_run_record_pool_manager.get_all().pop()
    prefix = str(parameters.get("Prefix") or "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    base = f"{prefix}{record.map_run_arn.split(':')[-1]}/"
    outcomes = sorted(record.__dict__.get("_sputnik_outcomes", []), key=lambda o: o["Index"])
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        runs = [{k: v for k, v in o.items() if k != "Index"} for o in outcomes if o["Status"] == status]
        if runs:
            body = json.dumps(runs).encode()
            key = f"{base}{status}_0.json"
            s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
    manifest = {
        "DestinationBucket": parameters["Bucket"],
        "MapRunArn": record.map_run_arn,
        "ResultFiles": files,
    }
    s3.put_object(Bucket=parameters["Bucket"], Key=f"{base}manifest.json", Body=json.dumps(manifest).encode())
    env.stack.append(
        {
            "MapRunArn": record.map_run_arn,
            "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": f"{base}manifest.json"},
        }
    )


def patch_moto_map_results() -> None:
    """Make moto's distributed Map ResultWriter write the result files AWS writes (moto 5.2.5 writes none)."""
    worker = map_worker.DistributedItemProcessorWorker
    writer = resource_eval_s3.ResourceEvalS3
    if getattr(worker._eval_job, "_sputnik", False):
        return
    found = (
        list(inspect.signature(worker._eval_job).parameters),
        list(inspect.signature(writer._handle_put_object).parameters),
    )
    if found != (_EXPECTED_EVAL_JOB, _EXPECTED_PUT_OBJECT):
        # Private moto APIs: fail loudly rather than let Map results silently go missing.
        raise RuntimeError(f"moto's distributed Map internals changed ({found}); update the local stack")
    worker._eval_job = _recording_eval_job(worker._eval_job)  # type: ignore[method-assign]
    writer._handle_put_object = staticmethod(_write_results)  # type: ignore[method-assign]


def cache_moto_service_list() -> None:
    """List moto's services once: its server lists and stats its package folder on every request."""
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules


def free_port() -> int:
    """Ask the OS for a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# One request the moto server served: method, path (no query string) and Range header, if any.
RecordedRequest = tuple[str, str, str | None]
# An answer served instead of moto's: HTTP status line and body (e.g. S3's 503 SlowDown), for fault tests.
Fault = tuple[str, bytes]


class RecordingMotoServer(ThreadedMotoServer):
    """moto's threaded server, its WSGI app wrapped so that every request is handed to `record` first.

    When `record` returns a Fault, that is the answer instead of moto's.
    """

    def __init__(self, record: Callable[[RecordedRequest], Fault | None], ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self._record = record

    def _server_entry(self) -> None:
        """Serve moto's app as ThreadedMotoServer does, through the recorder."""
        app = DomainDispatcherApplication(create_backend_app)
        record = self._record

        def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            fault = record((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_RANGE")))
            if fault is not None:
                status, body = fault
                start_response(
                    status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                )
                return [body]
            return app(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, recording, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class LocalStack:
    """template.yaml in moto: tables, buckets, notifications, functions and state machines.

    With `record_requests=True` the moto server logs every request it serves (S3, DynamoDB, ...)
    as (method, path, Range header) in `requests`, e.g. to count what GDAL fetches per tile.
    """

    def __init__(
        self,
        template_path: Path,
        aws_port: int = 5000,
        stack_name: str = "sputnik",
        *,
        record_requests: bool = False,
    ) -> None:
        self.template = Template.load(template_path.resolve(), stack_name)
        self.aws_port = aws_port
        self.endpoint = f"http://127.0.0.1:{aws_port}"
        self.functions: dict[str, LocalFunction] = {}
        self.routes: list[Route] = self.template.routes()
        self.record_requests = record_requests
        self._server: ThreadedMotoServer | None = None
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests recorded so far, in arrival order (empty unless recording)."""
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._requests_lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        """Log one request (called by the moto server's threads)."""
        with self._requests_lock:
            self._requests.append(request)

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def start(self) -> "LocalStack":
        """Start moto, point this process at it and create every resource of the template."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.record_requests:
            self._server = RecordingMotoServer(self._record, "127.0.0.1", self.aws_port)
        else:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
        self._server.start()
        self._environment()
        patch_moto_lambda()
        patch_moto_s3_events()
        serialize_moto_dynamodb()
        cheap_moto_transactions()
        stamp_log_records()
        patch_moto_map_results()
        cache_moto_service_list()
        # Step Functions only executes ASL when asked. Lambda keeps moto's default "Docker" mode so
        # that its invocations reach LambdaFunction.invoke, which patch_moto_lambda replaced.
        import urllib.request

        req = urllib.request.Request(  # noqa: S310 - http to our own loopback endpoint
            f"{self.endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            method="POST",
        )
        urllib.request.urlopen(req).read()  # noqa: S310 - as above
        self._tables()
        self._buckets()
        self._functions()
        self._notifications()
        self._state_machines()
        return self

    def stop(self) -> None:
        """Stop the moto server."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name in self.functions:
            _FUNCTIONS.pop(name, None)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _environment(self) -> None:
        """Give this process what a deployed function finds in its environment, plus the endpoint."""
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                # moto's Step Functions interpreter calls back to this port.
                "MOTO_PORT": str(self.aws_port),
            }
        )
        merged: dict[str, str] = {}
        for logical in self.template.of_type("AWS::Serverless::Function"):
            for key, value in self.template.function_environment(logical).items():
                if merged.get(key, value) != value:
                    raise ValueError(f"{key} differs between functions; the local stack shares one process")
                merged[key] = value
        os.environ.update(merged)
        from sputnik.models import bind_tables
        from sputnik.settings import get_settings

        get_settings.cache_clear()
        bind_tables()

    def _tables(self) -> None:
        """Create DynamoDB tables exactly as the template declares them."""
        ddb = self.client("dynamodb")
        keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for logical, res in self.template.of_type("AWS::DynamoDB::Table").items():
            props = res["Properties"]
            spec = {k: props[k] for k in keep if k in props}
            ddb.create_table(
                TableName=self.template.physical_name(logical), BillingMode="PAY_PER_REQUEST", **spec
            )

    def _buckets(self) -> None:
        """Create the template's S3 buckets."""
        s3 = self.client("s3")
        for logical in self.template.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=self.template.physical_name(logical))

    def _functions(self) -> None:
        """Register each function with moto (so ARNs, invoke and events work) and in-process."""
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=f"{self.template.stack_name}-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        glob = (self.template.data.get("Globals") or {}).get("Function") or {}
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("app.py", "# the local stack runs the real code in-process\n")
        lam = self.client("lambda")
        for logical, res in self.template.of_type("AWS::Serverless::Function").items():
            props = res.get("Properties") or {}
            name = self.template.physical_name(logical)
            function = LocalFunction(
                logical,
                name,
                self.template.root / str(props.get("CodeUri", glob.get("CodeUri", "."))),
                str(props.get("Handler", glob.get("Handler", "app.handler"))),
                float(props.get("Timeout", glob.get("Timeout", 3))),
                int(props.get("MemorySize", glob.get("MemorySize", 128))),
            )
            self.functions[name] = _FUNCTIONS[name] = function
            lam.create_function(
                FunctionName=name,
                Runtime=str(props.get("Runtime", glob.get("Runtime", "python3.12"))),
                Role=role,
                Handler=function.handler_spec,
                Code={"ZipFile": code.getvalue()},
                Environment={"Variables": self.template.function_environment(logical)},
            )

    def _notifications(self) -> None:
        """Wire S3 and SNS events of functions as the SAM transform would."""
        s3 = self.client("s3")
        sns = self.client("sns")
        per_bucket: dict[str, list[dict[str, Any]]] = {}
        for logical, res in self.template.of_type("AWS::Serverless::Function").items():
            arn = self.template.arn(logical)
            for event in ((res.get("Properties") or {}).get("Events") or {}).values():
                props = self.template.resolve(event.get("Properties") or {})
                if event.get("Type") == "S3":
                    config: dict[str, Any] = {"LambdaFunctionArn": arn, "Events": _as_list(props["Events"])}
                    rules = ((props.get("Filter") or {}).get("S3Key") or {}).get("Rules")
                    if rules:
                        config["Filter"] = {"Key": {"FilterRules": rules}}
                    per_bucket.setdefault(props["Bucket"], []).append(config)
                elif event.get("Type") == "SNS" and props.get("Topic"):
                    sns.subscribe(TopicArn=props["Topic"], Protocol="lambda", Endpoint=arn)
        for bucket, configs in per_bucket.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
            )

    def subscribe(self, parameter: str, topic_arn: str) -> list[str]:
        """Subscribe as the template does to the topic a parameter names, set to `topic_arn`; the ARNs.

        Each AWS::SNS::Subscription of that topic is made in its Region with its FilterPolicy, which
        moto's SNS applies as SNS does.
        """
        made = []
        for res in self.template.of_type("AWS::SNS::Subscription").values():
            if (res.get("Properties") or {}).get("TopicArn") != {"Ref": parameter}:
                continue
            props = self.template.resolve(res["Properties"], {parameter: topic_arn})
            attributes = (
                {"FilterPolicy": json.dumps(props["FilterPolicy"])} if "FilterPolicy" in props else {}
            )
            if "FilterPolicyScope" in props:
                attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
            sns = boto3.client("sns", endpoint_url=self.endpoint, region_name=props.get("Region", REGION))
            made.append(
                sns.subscribe(
                    TopicArn=props["TopicArn"],
                    Protocol=props["Protocol"],
                    Endpoint=props["Endpoint"],
                    Attributes=attributes,
                    ReturnSubscriptionArn=True,
                )["SubscriptionArn"]
            )
        return made

    def _state_machines(self) -> None:
        """Create state machines from their ASL files with DefinitionSubstitutions applied."""
        sfn = self.client("stepfunctions")
        for logical, res in self.template.of_type("AWS::Serverless::StateMachine").items():
            props = res.get("Properties") or {}
            if "DefinitionUri" in props:
                text = (self.template.root / str(props["DefinitionUri"])).read_text()
            else:
                text = json.dumps(props["Definition"])
            subs = {
                k: str(self.template.resolve(v))
                for k, v in (props.get("DefinitionSubstitutions") or {}).items()
            }
            for key, value in subs.items():
                text = text.replace("${" + key + "}", value)
            sfn.create_state_machine(
                name=self.template.physical_name(logical),
                definition=text,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.template.stack_name}-local",
            )

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        """Run a function's handler in-process (what API Gateway's integration does)."""
        return self.functions[function_name].invoke(event)

    def function_for(self, logical_id: str) -> str:
        """The local name of a function from its logical id."""
        return self.template.physical_name(logical_id)


def _as_list(value: Any) -> list[Any]:
    """A scalar or list as a list."""
    return value if isinstance(value, list) else [value]
