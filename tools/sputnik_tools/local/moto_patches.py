"""Every change the local stack makes to moto, each checked against the private API it was written for.

moto is pinned, but its private APIs can change with any release: `expect_shape` makes a patch fail
loudly at start-up (naming what changed) rather than let the local stack silently diverge from AWS.
"""

import base64
import contextvars
import copy
import datetime
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto import backends as moto_backends
from moto.awslambda.models import LambdaBackend, LambdaFunction, lambda_backends
from moto.core.serialize import JSONSerializer
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import EventPattern, events_backends
from moto.events.models import Rule as EventsRule
from moto.s3 import notifications as s3_notifications
from moto.sns import models as sns_models
from moto.sns.utils import FilterPolicyMatcher
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker as map_worker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
    resource_eval_s3,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramError
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from sputnik_tools.local.runtime import FUNCTIONS

log = logging.getLogger(__name__)


def parameters(function: Callable[..., Any]) -> list[str]:
    """The names of a function's parameters, the shape a patch relies on."""
    return list(inspect.signature(function).parameters)


def expect_shape(what: str, found: object, expected: object) -> None:
    """Fail loudly when a private moto API is not the shape a patch was written for."""
    if found != expected:
        raise RuntimeError(
            f"moto's {what} changed to {found} (expected {expected}); update sputnik_tools.local.moto_patches"
        )


def _patched(target: Any) -> bool:
    """Whether a function is already one of ours (every patch is idempotent)."""
    return bool(getattr(target, "_sputnik", False))


def _ours(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a replacement as ours."""
    function._sputnik = True  # type: ignore[attr-defined]
    return function


# ---------------------------------------------------------------- Lambda: the real Python handlers
def _dispatching_invoke(
    self: LambdaFunction, body: str, request_headers: Any, response_headers: Any
) -> bytes | str:
    """Replace moto's Docker-based LambdaFunction.invoke with a call to the real Python handler."""
    function = FUNCTIONS.get(self.function_name)
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


_ours(_dispatching_invoke)


def patch_lambda() -> None:
    """Dispatch every moto Lambda invocation (boto3, Step Functions, S3, SNS) to in-process handlers."""
    if _patched(LambdaFunction.invoke):
        return
    expect_shape(
        "LambdaFunction.invoke",
        parameters(LambdaFunction.invoke),
        ["self", "body", "request_headers", "response_headers"],
    )
    LambdaFunction.invoke = _dispatching_invoke  # type: ignore[method-assign]


# ---------------------------------------------------------------- S3: the sequencer of real events
_last_sequencer = 0
_sequencer_lock = threading.Lock()


def _next_sequencer() -> str:
    """A strictly increasing hex sequencer, like the one S3 puts in every event of a key."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:016X}"


def patch_s3_events() -> None:
    """Give moto's S3 notifications the `sequencer` that real S3 events carry (moto leaves it out)."""
    original = s3_notifications._get_s3_event
    if _patched(original):
        return
    expect_shape(
        "s3.notifications._get_s3_event",
        parameters(original),
        ["event_name", "bucket", "key", "notification_id"],
    )

    def with_sequencer(*args: Any, **kwargs: Any) -> dict[str, Any]:
        event: dict[str, Any] = original(*args, **kwargs)
        for record in event.get("Records", []):
            record["s3"]["object"].setdefault("sequencer", _next_sequencer())
        return event

    s3_notifications._get_s3_event = _ours(with_sequencer)


# ---------------------------------------------------------------- DynamoDB: isolation and cheap rollback
_dynamodb_lock = threading.RLock()


def serialize_dynamodb() -> None:
    """Serve moto's DynamoDB requests one at a time.

    moto's TransactWriteItems deep-copies whole tables (to roll back) while other server threads
    write them ("dictionary changed size during iteration"), and a rollback would undo their
    writes; DynamoDB itself isolates transactions. One lock gives moto that isolation.
    """
    original = DynamoHandler.call_action
    if _patched(original):
        return
    expect_shape("DynamoHandler.call_action", parameters(original), ["self"])

    def serialized(self: DynamoHandler) -> Any:
        with _dynamodb_lock:
            return original(self)

    DynamoHandler.call_action = _ours(serialized)  # type: ignore[method-assign]


def _table_snapshot(table: Table) -> Any:
    """A table's items as they are now: its item maps copied, the items themselves shared."""
    snapshot = type(table.items)(dict)
    for hash_key, value in table.items.items():
        snapshot[hash_key] = dict(value) if table.has_range_key else value
    return snapshot


def _replace_item(snapshot: Any, table: Table, item: Any) -> None:
    """Put a deep copy of `item` in its place in a snapshot of `table`."""
    hash_key = item.hash_key
    if table.has_range_key:
        snapshot[hash_key][item.range_key] = copy.deepcopy(item)
    else:
        snapshot[hash_key] = copy.deepcopy(item)


def cheap_transactions() -> None:
    """Give moto's TransactWriteItems a rollback that costs what the transaction touches.

    moto backs up by deep-copying each table a transaction names, once per item: an ingest (a scene
    and five metas) copied the meta table five times, so ingest slowed with the catalogue's size
    (3.9 scenes/s at 300 scenes). With DynamoDB calls served one at a time (above), a copy of the
    item maps is an exact backup: writes replace items, and the ones an Update changes in place
    are copied whole. moto's own table copies are made no-ops for the call.
    """
    original = DynamoDBBackend.transact_write_items
    if _patched(original):
        return
    expect_shape("DynamoDBBackend.transact_write_items", parameters(original), ["self", "transact_items"])

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

    DynamoDBBackend.transact_write_items = _ours(transact_write_items)  # type: ignore[method-assign]


# ---------------------------------------------------------------- DynamoDB: item work at its own cost
# What the wire carries of each AttributeValue type (botocore's model of DynamoDB): scalars as
# they are, blobs in base64, sets and lists item by item, maps attribute by attribute.
_ATTRIBUTE_VALUE_TYPES = {
    "S": "string",
    "N": "string",
    "B": "blob",
    "SS": "list",
    "NS": "list",
    "BS": "list",
    "M": "map",
    "L": "list",
    "NULL": "boolean",
    "BOOL": "boolean",
}


def _b64(value: str | bytes) -> str:
    """A blob as moto's serializer writes it."""
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as DynamoDB's JSON protocol sends it: what moto's generic serializer writes."""
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if inner is None or kind not in _ATTRIBUTE_VALUE_TYPES:
            continue  # moto's serializer writes only the shape's members that are set
        if kind in ("S", "N"):
            out[kind] = str(inner)
        elif kind == "B":
            out[kind] = _b64(inner)
        elif kind in ("SS", "NS"):
            out[kind] = [str(v) for v in inner]
        elif kind == "BS":
            out[kind] = [_b64(v) for v in inner]
        elif kind == "M":
            out[kind] = {k: attribute_value(v) for k, v in inner.items()}
        elif kind == "L":
            out[kind] = [attribute_value(v) for v in inner]
        else:
            out[kind] = inner
    return out


def fast_attribute_values() -> None:
    """Serialise DynamoDB's AttributeValues directly instead of through moto's generic serializer.

    The generic one looks each of a value's ten possible members up through six alias rules, so a
    Query page of 1,000 scenes cost over a second to write out; the JSON is the same (a test compares).
    """
    original = JSONSerializer._serialize
    if _patched(original):
        return
    from botocore.session import get_session

    shape = get_session().get_service_model("dynamodb").shape_for("AttributeValue")
    expect_shape(
        "JSONSerializer._serialize and DynamoDB's AttributeValue",
        (parameters(original), {k: v.type_name for k, v in shape.members.items()}),
        (["self", "serialized", "value", "shape", "key"], _ATTRIBUTE_VALUE_TYPES),
    )

    def _serialize(self: JSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            shape.name == "AttributeValue"
            and isinstance(value, dict)
            and self.service_model.service_name == "dynamodb"
        ):
            serialized[self.get_serialized_name(shape, key)] = attribute_value(value)
        else:
            original(self, serialized, value, shape, key)

    JSONSerializer._serialize = _ours(_serialize)  # type: ignore[method-assign]


# moto's item size limit (it errs strict: AWS documents 400 KB, that is 409,600 bytes).
ITEM_SIZE_LIMIT = 405_000


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """Item.__init__ as moto has it, the size of what is stored so far kept, not recomputed per attribute."""
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    size = 0
    for key, value in attrs.items():
        typed = DynamoType(value)
        size += len(key.encode()) + typed.size()
        if size > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self.attrs, key, typed)


_ours(_item_init)


def linear_item_sizes() -> None:
    """Check an item's size once per attribute, not once per attribute per attribute.

    moto's LimitedSizeDict sums the sizes of every attribute stored so far before adding each
    one (quadratic in an item's attributes); the limit and the error stay moto's.
    """
    if _patched(Item.__init__):
        return
    source = inspect.getsource(LimitedSizeDict.__setitem__)
    expect_shape(
        "Item.__init__ and LimitedSizeDict's limit",
        (parameters(Item.__init__), f"> {ITEM_SIZE_LIMIT:d}" in source.replace("_", "")),
        (["self", "hash_key", "range_key", "attrs"], True),
    )
    Item.__init__ = _item_init  # type: ignore[method-assign]


def cached_expression_parsing() -> None:
    """Parse each condition expression once per text, names and values, not once per check of it.

    A transaction of 100 conditional writes had moto parse its conditions 300 times (the handler,
    the transaction and each put parse them again). The tree is a pure function of the text, the
    names and the values, and evaluating it changes nothing; the names and values it found (which
    the handler checks against those sent) are given back with it. A malformed expression is
    parsed, and refused, every time.
    """
    original = ConditionExpressionParser.parse
    if _patched(original):
        return
    expect_shape(
        "ConditionExpressionParser (parse, its inputs and what it found)",
        (parameters(original), parameters(ConditionExpressionParser.__init__)),
        (
            ["self"],
            ["self", "condition_expression", "expression_attribute_names", "expression_attribute_values"],
        ),
    )
    parsed: dict[tuple[str | None, str, str], tuple[Any, list[str], list[str]]] = {}

    def parse(self: ConditionExpressionParser) -> Any:
        try:
            key = (
                self.condition_expression,
                json.dumps(self.expression_attribute_names, sort_keys=True),
                json.dumps(self.expression_attribute_values, sort_keys=True),
            )
        except TypeError:  # binary values: parse as moto does
            return original(self)
        if key not in parsed:
            if len(parsed) > 4096:  # bounded: a long-running stack sees many expressions
                parsed.clear()
            names, values = list(self.expr_attr_names_found), list(self.expr_attr_values_found)
            op = original(self)
            parsed[key] = (
                op,
                self.expr_attr_names_found[len(names) :],
                self.expr_attr_values_found[len(values) :],
            )
            return op
        op, names_found, values_found = parsed[key]
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    ConditionExpressionParser.parse = _ours(parse)  # type: ignore[method-assign]


def _shared(item: Item, memo: dict[int, Any]) -> Item:
    """A Query's "copy" of an item: the item itself (see cheap_queries)."""
    return item


def _sorted_items(
    self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
) -> list[Any]:
    """Table.sorted_items with each item's key values cast once, not once per comparison."""
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(item.attrs[attr].cast_value for attr in attrs))
    return items


_ours(_sorted_items)


QUERY_PARAMETERS = [
    "self",
    "hash_key",
    "range_comparison",
    "range_objs",
    "limit",
    "exclusive_start_key",
    "scan_index_forward",
    "projection_expressions",
    "index_name",
    "consistent_read",
    "filter_expression",
    "hash_key_conditions",
    "range_key_conditions",
    "filter_kwargs",
]


def cheap_queries() -> None:
    """Let a Query gather its candidates without first sorting the whole table, nor copying them.

    moto's Table.query starts from all_items(), which sorts every item of the table by its
    keys, then keeps those of the queried key and sorts them again by what the Query orders
    them by (the table's or the index's keys, always ending with the table's unique key). The
    first sort cannot change the result, and cost a second per Query of a 20,000-scene
    catalogue. A Query of the table's key starts from that key's items alone. Scans keep the
    sorted order. moto then deep-copies the page it found; nothing after reads an item but to
    build new ones (projections, the response), so the page's items are shared instead.
    """
    original = Table.query
    if _patched(original):
        return
    # DynamoType compares by its cast value (and its type, one per key attribute): the same order.
    expect_shape(
        "Table.query and how it sorts and copies (all_items, sorted_items, DynamoType.__lt__, project)",
        (
            parameters(original),
            "self.all_items()" in inspect.getsource(original),
            parameters(Table.sorted_items),
            inspect.getsource(DynamoType.__lt__).split("\n")[1].strip(),
            "results = copy.deepcopy(results)" in inspect.getsource(original),
            parameters(Item.project),
        ),
        (
            QUERY_PARAMETERS,
            True,
            ["self", "hash_key_attrs", "range_key_attrs", "items"],
            "return self.cast_value < other.cast_value",
            True,
            ["self", "projection_expressions"],
        ),
    )

    signature = inspect.signature(original)

    def candidates(table: Table, hash_key: Any, index_name: str | None) -> list[Any]:
        if index_name or hash_key is None:  # an index: every item of the table may be in it
            if not table.range_key_attr:
                return list(table.items.values())
            return [item for items in table.items.values() for item in items.values()]
        # The table's own key: its items only, in range key order (moto's sort then checks it in
        # one pass), each range key cast once; a key has one type, so this is DynamoType's order.
        if not table.range_key_attr:
            found = table.items.get(hash_key)
            return [] if found is None else [found]
        return sorted(table.items.get(hash_key, {}).values(), key=lambda item: item.range_key.cast_value)

    copy_item = Item.__deepcopy__

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        with _dynamodb_lock:  # the overrides below are seen by this call alone
            self.all_items = lambda: candidates(self, asked.get("hash_key"), asked.get("index_name"))  # type: ignore[method-assign]
            Item.__deepcopy__ = _shared  # type: ignore[method-assign,assignment]
            try:
                return original(self, *args, **kwargs)
            finally:
                Item.__deepcopy__ = copy_item  # type: ignore[method-assign]
                del self.all_items

    Table.query = _ours(query)  # type: ignore[method-assign]
    Table.sorted_items = _sorted_items  # type: ignore[method-assign]


# ---------------------------------------------------------------- Step Functions: Map results as AWS has them
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

    return _ours(eval_job)


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


def patch_map_results() -> None:
    """Make moto's distributed Map ResultWriter write the result files AWS writes (moto 5.2.5 writes none)."""
    worker = map_worker.DistributedItemProcessorWorker
    writer = resource_eval_s3.ResourceEvalS3
    if _patched(worker._eval_job):
        return
    expect_shape(
        "distributed Map internals (worker._eval_job, ResourceEvalS3._handle_put_object)",
        (parameters(worker._eval_job), parameters(writer._handle_put_object)),
        (["self", "env", "job"], ["env", "resource_runtime_part", "state_credentials"]),
    )
    worker._eval_job = _recording_eval_job(worker._eval_job)  # type: ignore[method-assign]
    writer._handle_put_object = staticmethod(_ours(_write_results))  # type: ignore[method-assign]


# ---------------------------------------------------------------- Step Functions: status events
DETAIL_TYPE = "Step Functions Execution Status Change"
_RULE_PARAMETERS = [
    "self",
    "name",
    "account_id",
    "region_name",
    "description",
    "event_pattern",
    "schedule_exp",
    "role_arn",
    "event_bus_name",
    "state",
    "managed_by",
    "targets",
]


def _millis(when: datetime.datetime | None) -> int | None:
    """A time as the event has it: milliseconds since the epoch."""
    return None if when is None else int(when.timestamp() * 1000)


def execution_status_event(execution: Any) -> dict[str, Any]:
    """What Step Functions sends EventBridge when a STANDARD execution changes status (documented shape)."""
    status = execution.exec_status.value
    succeeded = status == "SUCCEEDED"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": (execution.stop_date or execution.start_date).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine.arn,
            "name": execution.name,
            "status": status,
            "startDate": _millis(execution.start_date),
            "stopDate": _millis(execution.stop_date),
            "input": json.dumps(execution.input_data, separators=(",", ":")),
            "inputDetails": {"included": True},
            "output": json.dumps(execution.output, separators=(",", ":")) if succeeded else None,
            "outputDetails": {"included": True} if succeeded else None,
        },
    }


def _invoke_later(account: str, arn: str, event: dict[str, Any]) -> None:
    """Invoke a Lambda target asynchronously, as EventBridge does: on a thread of its own, result unread."""

    def invoke() -> None:
        region = arn.split(":")[3]
        try:
            lambda_backends[account][region].invoke(
                function_name=arn,
                qualifier=None,
                body=json.dumps(event),
                headers={"x-amz-invocation-type": "Event"},
                response_headers={},
            )
        except Exception:  # Lambda keeps an asynchronous invocation's failure to itself
            log.exception("EventBridge could not invoke %s", arn)

    threading.Thread(target=invoke, name="eventbridge", daemon=True).start()


def deliver_event(event: dict[str, Any]) -> int:
    """Route an AWS service's event through the default bus's rules in moto; the Lambda targets it reached.

    moto's own delivery (put_events) has no Lambda targets, and Step Functions sends it nothing.
    """
    account, region = event["account"], event["region"]
    bus = events_backends[account][region].event_buses.get("default")
    reached = 0
    for rule in list(bus.rules.values()) if bus else []:
        if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):  # type: ignore[arg-type]
            continue
        for target in rule.targets:
            if str(target["Arn"]).split(":")[2] == "lambda":
                _invoke_later(account, str(target["Arn"]), event)
                reached += 1
    return reached


def patch_execution_events() -> None:
    """Send EventBridge the status change of each execution that ends, as Step Functions does."""
    comm = BaseExecutionWorkerCommunication
    original = comm.terminated
    if _patched(original):
        return
    expect_shape(
        "execution and EventBridge internals (terminated, Rule, matches_event, LambdaBackend.invoke)",
        (
            parameters(original),
            parameters(EventsRule.__init__),
            parameters(EventPattern.matches_event),
            parameters(LambdaBackend.invoke),
        ),
        (
            ["self"],
            _RULE_PARAMETERS,
            ["self", "event"],
            ["self", "function_name", "qualifier", "body", "headers", "response_headers"],
        ),
    )

    def terminated(self: Any) -> None:
        original(self)
        if self.execution.sm_type != "STANDARD":  # Step Functions sends none for EXPRESS executions
            return
        try:
            deliver_event(execution_status_event(self.execution))
        except Exception:  # delivery is best effort, as AWS's is; the execution has ended regardless
            log.exception("the status change of %s was not delivered", self.execution.exec_arn)

    comm.terminated = _ours(terminated)  # type: ignore[method-assign]


# ---------------------------------------------------------------- SNS: what a Lambda subscriber receives
# The time SNS stamps a message with: one per publication, for every subscription it reaches.
_published_at: contextvars.ContextVar[str | None] = contextvars.ContextVar("sns_published_at", default=None)


def sns_lambda_event(
    subscription: Any, message: str, message_id: str, subject: str | None, attributes: Any
) -> Any:
    """The event SNS invokes a subscribed function with, in the documented shape of Lambda's SNS event.

    moto sends placeholders (fixed attributes, an epoch timestamp, "EXAMPLE" ARNs); this is the
    message as published: its id, subject (null without one), attributes with their types, the
    time of publication, and moto's own signature of it with the URL of its certificate.
    """
    signed = subscription.get_post_data(message, message_id, subject)
    region = subscription.topic.arn.split(":")[3]
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription.arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": subscription.topic.arn,
                    "Subject": subject or None,
                    "Message": message,
                    "Timestamp": signed["Timestamp"],
                    "SignatureVersion": signed["SignatureVersion"],
                    "Signature": signed["Signature"],
                    "SigningCertUrl": signed["SigningCertURL"],
                    "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                    f"&SubscriptionArn={subscription.arn}",
                    "MessageAttributes": {
                        name: {"Type": value["Type"], "Value": value["Value"]}
                        for name, value in (attributes or {}).items()
                    },
                },
            }
        ]
    }


def _string_rules_match(field: str, rules: list[Any], attributes: dict[str, Any]) -> bool | None:
    """Whether a policy's string rules match an attribute as SNS matches them; None: not a case for this.

    A String attribute matches a rule equal to its value, a String.Array one a rule equal to one of
    its elements. moto also decodes a String value as JSON and looks the rule up in it (a substring
    of a quoted string, an element of an array sent as String): AWS does not.
    """
    attribute = attributes.get(field)
    strings = [rule for rule in rules if isinstance(rule, str)]
    if (
        not strings
        or not isinstance(attribute, dict)
        or attribute.get("Type") not in ("String", "String.Array")
    ):
        return None
    if attribute["Type"] == "String":
        values = [attribute.get("Value")]
    else:
        try:
            values = json.loads(attribute.get("Value") or "")
        except ValueError:
            values = []
        values = values if isinstance(values, list) else []
    return any(rule in values for rule in strings)


def patch_sns_to_lambda() -> None:
    """Deliver SNS messages to Lambda subscribers as AWS does: the documented event, the documented filter.

    moto builds its own event for a Lambda subscriber, with none of the message's attributes, and
    its filter policy matches String attributes more loosely than SNS (see _string_rules_match).
    """
    subscription = sns_models.Subscription
    original = subscription.publish
    if _patched(original):
        return
    expect_shape(
        "SNS internals (Subscription.publish, get_post_data, its timestamp, the filter's _field_match)",
        (
            parameters(original),
            parameters(subscription.get_post_data),
            "send_sns_message" in inspect.getsource(original),
            parameters(sns_models.iso_8601_datetime_with_milliseconds),
            parameters(FilterPolicyMatcher._field_match),
        ),
        (
            [
                "self",
                "message",
                "message_id",
                "subject",
                "message_attributes",
                "group_id",
                "deduplication_id",
                "message_structure",
            ],
            ["self", "message", "message_id", "subject", "message_attributes"],
            True,
            ["value"],
            ["field", "rules", "dict_body", "attributes_based_check"],
        ),
    )

    def publish(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol != "lambda":
            return original(
                self,
                message,
                message_id,
                subject,
                message_attributes,
                group_id,
                deduplication_id,
                message_structure,
            )
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            message_attributes, message
        ):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        event = sns_lambda_event(self, message, message_id, subject, message_attributes)
        parts = self.endpoint.split(":")  # arn:aws:lambda:region:account:function:name[:qualifier]
        function = lambda_backends[parts[4]][parts[3]].get_function(
            parts[6], parts[7] if len(parts) > 7 else None
        )
        function.invoke(json.dumps(event), {}, {})
        return None

    topic_publish = sns_models.Topic.publish
    stamp = sns_models.iso_8601_datetime_with_milliseconds

    def published_now(self: Any, *args: Any, **kwargs: Any) -> str:
        token = _published_at.set(stamp())
        try:
            return str(topic_publish(self, *args, **kwargs))
        finally:
            _published_at.reset(token)

    sns_models.iso_8601_datetime_with_milliseconds = lambda value=None: (
        stamp(value) if value is not None else (_published_at.get() or stamp())
    )
    sns_models.Topic.publish = _ours(published_now)  # type: ignore[method-assign]
    subscription.publish = _ours(publish)  # type: ignore[method-assign]

    field_match = FilterPolicyMatcher._field_match

    def _field_match(
        field: str, rules: list[Any], dict_body: dict[str, Any], attributes_based_check: bool = True
    ) -> bool:
        if attributes_based_check:
            matched = _string_rules_match(field, rules, dict_body)
            if matched:
                return True
            if matched is not None:  # the other rules (numeric, exists, prefix...) as moto has them
                others = [rule for rule in rules if not isinstance(rule, str)]
                return bool(others) and bool(field_match(field, others, dict_body, attributes_based_check))
        return bool(field_match(field, rules, dict_body, attributes_based_check))

    FilterPolicyMatcher._field_match = staticmethod(_ours(_field_match))  # type: ignore[method-assign]


# ---------------------------------------------------------------- the server itself
def cache_service_list() -> None:
    """List moto's services once: its server lists and stats its package folder on every request."""
    original = moto_backends.list_of_moto_modules
    if _patched(original):
        return
    expect_shape("backends.list_of_moto_modules", parameters(original), [])
    modules = tuple(original())
    moto_backends.list_of_moto_modules = _ours(lambda: modules)


def patch_moto() -> None:
    """Apply every patch (idempotent: moto is process-wide, and so are they)."""
    patch_lambda()
    patch_s3_events()
    serialize_dynamodb()
    cheap_transactions()
    fast_attribute_values()
    linear_item_sizes()
    cached_expression_parsing()
    cheap_queries()
    patch_map_results()
    patch_execution_events()
    patch_sns_to_lambda()
    cache_service_list()
