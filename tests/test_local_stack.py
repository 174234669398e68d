"""The local stack: template-driven resources, in-process Lambda dispatch, S3 events, Step Functions."""

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto import backends as moto_backends
from moto.awslambda.models import LambdaFunction
from moto.core.serialize import JSONSerializer, ResponseSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.s3 import notifications as s3_notifications
from moto.sns.models import Subscription
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from sputnik_tools.local import moto_patches
from sputnik_tools.local.front import Front, build_event, parse_result
from sputnik_tools.local.ports import free_port
from sputnik_tools.local.stack import LocalStack
from sputnik_tools.template import Route
from tests.support.tasks import execution_status

MINI = Path(__file__).parent / "data" / "mini" / "template.yaml"


@pytest.fixture(scope="module")
def mini(stack: LocalStack) -> Iterator[LocalStack]:
    """A second stack from a tiny template; the main stack's environment is restored afterwards."""
    saved = dict(os.environ)
    with LocalStack(MINI, aws_port=free_port(), stack_name="mini") as running:
        yield running
    os.environ.clear()
    os.environ.update(saved)
    from sputnik.models import bind_tables
    from sputnik.settings import get_settings

    get_settings.cache_clear()
    bind_tables()


def test_lambda_invoke_runs_the_real_handler(mini: LocalStack) -> None:
    lam = mini.client("lambda")
    out = lam.invoke(FunctionName="mini-EchoFunction", Payload=json.dumps({"n": 21}))
    assert json.loads(out["Payload"].read()) == {"doubled": 42}
    failed = lam.invoke(FunctionName="mini-EchoFunction", Payload=json.dumps({"fail": True}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"


def test_s3_notification_invokes_the_function_with_its_filter(mini: LocalStack) -> None:
    s3 = mini.client("s3")
    bucket = mini.template.physical_name("DropBucket")
    s3.put_object(Bucket=bucket, Key="in/a b+c.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="elsewhere/b.txt", Body=b"x")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    # The function decoded the URL-encoded key S3 sent; the prefix filter kept the other out.
    assert "out/a b+c.txt" in keys
    assert not any(k.startswith("out/elsewhere") for k in keys)


def test_state_machine_executes_the_asl_with_lambda_tasks(mini: LocalStack) -> None:
    sfn = mini.client("stepfunctions")
    arn = mini.template.arn("DoubleMachine")
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": 5}))["executionArn"]
    assert execution_status(mini, execution) == "SUCCEEDED"
    described = sfn.describe_execution(executionArn=execution)
    assert json.loads(described["output"]) == {"doubled": 10}


def test_http_front_routes_as_httpapi(mini: LocalStack) -> None:
    front = Front(mini, port=free_port()).start()
    try:
        hello = httpx.get(f"{front.url}/hello/world?x=1")
        assert hello.json() == {
            "route": "GET /hello/{name}",
            "params": {"name": "world"},
            "fn": "mini-EchoFunction",
        }
        files = httpx.post(f"{front.url}/files/a/b/c.tif", content=b"\x00\x01")
        assert files.json()["params"] == {"proxy": "a/b/c.tif"}
        assert httpx.get(f"{front.url}/hello").status_code == 404
        assert httpx.get(f"{front.url}/hello/a/b").status_code == 404
    finally:
        front.stop()


@pytest.mark.parametrize(
    ("owner", "name", "patch", "what"),
    [
        (LambdaFunction, "invoke", moto_patches.patch_lambda, "LambdaFunction.invoke"),
        (s3_notifications, "_get_s3_event", moto_patches.patch_s3_events, "s3.notifications._get_s3_event"),
        (DynamoHandler, "call_action", moto_patches.serialize_dynamodb, "DynamoHandler.call_action"),
        (
            DynamoDBBackend,
            "transact_write_items",
            moto_patches.cheap_transactions,
            "DynamoDBBackend.transact_write_items",
        ),
        (
            moto_backends,
            "list_of_moto_modules",
            moto_patches.cache_service_list,
            "backends.list_of_moto_modules",
        ),
        (
            BaseExecutionWorkerCommunication,
            "terminated",
            moto_patches.patch_execution_events,
            "execution and EventBridge internals",
        ),
        (
            JSONSerializer,
            "_serialize",
            moto_patches.fast_attribute_values,
            "JSONSerializer._serialize and DynamoDB's AttributeValue",
        ),
        (Item, "__init__", moto_patches.linear_item_sizes, "Item.__init__ and LimitedSizeDict's limit"),
        (
            ConditionExpressionParser,
            "parse",
            moto_patches.cached_expression_parsing,
            "ConditionExpressionParser (parse, its inputs and what it found)",
        ),
        (Table, "query", moto_patches.cheap_queries, "Table.query and how it sorts and copies"),
        (Subscription, "publish", moto_patches.patch_sns_to_lambda, "SNS internals"),
    ],
)
def test_every_moto_patch_fails_loudly_when_moto_changes(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, patch: Callable[[], None], what: str
) -> None:
    def changed(self: Any, extra: str) -> str:
        return ""

    monkeypatch.setattr(owner, name, changed)
    with pytest.raises(RuntimeError, match=rf"moto's {re.escape(what)}.* changed to \(?\['self', 'extra'\]"):
        patch()


def test_routes_prefer_exact_then_literal_then_greedy() -> None:
    routes = sorted(
        [Route("GET", "/cog/{proxy+}", "A"), Route("GET", "/cog/info", "B"), Route("GET", "/cog/{x}", "C")],
        key=lambda r: r.specificity,
    )
    assert [r.function for r in routes] == ["B", "C", "A"]
    assert routes[2].match("GET", "/cog/tiles/1/2/3.png") == {"proxy": "tiles/1/2/3.png"}
    assert routes[0].match("POST", "/cog/info") is None


def test_event_is_api_gateway_http_v2() -> None:
    event = build_event(
        "GET /project/info", "GET", "/project/info?project_id=1&a=x&a=y", {"Authorization": "Basic eA=="}, b""
    )
    assert event["version"] == "2.0"
    assert event["rawQueryString"] == "project_id=1&a=x&a=y"
    assert event["queryStringParameters"] == {"project_id": "1", "a": "x,y"}
    assert event["headers"]["authorization"] == "Basic eA=="
    assert event["requestContext"]["http"]["method"] == "GET"
    assert parse_result({"statusCode": 204, "body": ""}).status == 204


def test_projects_handler_answers_a_raw_http_api_event_through_mangum(stack: LocalStack) -> None:
    # The exact shape API Gateway sends (payload format 2.0), not one built by our own front.
    event = {
        "version": "2.0",
        "routeKey": "GET /project/list",
        "rawPath": "/project/list",
        "rawQueryString": "",
        "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "GET", "path": "/project/list", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
            "requestId": "id",
            "routeKey": "GET /project/list",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    result = stack.invoke(stack.function_for("ProjectsFunction"), event)
    assert result["statusCode"] == 401
    assert result["headers"]["www-authenticate"].startswith("Basic")


def test_unknown_route_is_404_without_calling_a_function(front: Front) -> None:
    r = httpx.get(f"{front.url}/nothing/here")
    # API Gateway's own answer, not a function's (which would carry "detail").
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}


def test_request_log_records_s3_gets_with_their_range(stack: LocalStack) -> None:
    assert stack.requests == []  # off by default: the stack serves moto's app unwrapped
    saved = dict(os.environ)
    try:
        with LocalStack(MINI, aws_port=free_port(), stack_name="minilog", record_requests=True) as logged:
            s3 = logged.client("s3")
            bucket = logged.template.physical_name("DropBucket")
            s3.put_object(Bucket=bucket, Key="log/blocks.bin", Body=bytes(range(64)))
            logged.clear_requests()
            body = s3.get_object(Bucket=bucket, Key="log/blocks.bin", Range="bytes=16-31")["Body"].read()
            assert body == bytes(range(16, 32))
            assert logged.requests == [("GET", f"/{bucket}/log/blocks.bin", "bytes=16-31")]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from sputnik.models import bind_tables
        from sputnik.settings import get_settings

        get_settings.cache_clear()
        bind_tables()


@contextmanager
def scratch_table(
    stack: LocalStack, name: str, attributes: dict[str, str], key: tuple[str, ...], **extra: Any
) -> Iterator[Any]:
    """A table of the test's own in the stack (key attributes and their types; its key), dropped after it."""
    ddb = stack.client("dynamodb")
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in attributes.items()],
        KeySchema=[
            {"AttributeName": k, "KeyType": kind} for k, kind in zip(key, ("HASH", "RANGE"), strict=False)
        ],
        **extra,
    )
    try:
        yield ddb
    finally:
        ddb.delete_table(TableName=name)


def test_moto_transactions_apply_whole_or_roll_back_whole(stack: LocalStack) -> None:
    """The local stack's cheaper rollback keeps DynamoDB's all-or-nothing, Updates in place included."""
    table = "transactions-test"
    with scratch_table(stack, table, {"pk": "S", "sk": "S"}, ("pk", "sk")) as ddb:
        transactions_apply_whole_or_roll_back_whole(ddb, table)


def transactions_apply_whole_or_roll_back_whole(ddb: Any, table: str) -> None:
    """Failing and succeeding transactions over a table's rows kept, changed, deleted and new."""

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": sk}}

    def rows() -> dict[str, str]:
        found = ddb.query(
            TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
        )
        return {i["sk"]["S"]: i["v"]["S"] for i in found["Items"]}

    for sk in ("kept", "changed", "deleted"):
        ddb.put_item(TableName=table, Item={**key(sk), "v": {"S": "before"}})
    writes: list[dict[str, Any]] = [
        {"Put": {"TableName": table, "Item": {**key("new"), "v": {"S": "after"}}}},
        {"Put": {"TableName": table, "Item": {**key("kept"), "v": {"S": "after"}}}},
        {
            "Update": {
                "TableName": table,
                "Key": key("changed"),
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"S": "after"}},
            }
        },
        {"Delete": {"TableName": table, "Key": key("deleted")}},
    ]
    failing = {
        "ConditionCheck": {
            "TableName": table,
            "Key": key("absent"),
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[*writes, failing])
    assert rows() == {"kept": "before", "changed": "before", "deleted": "before"}

    ddb.transact_write_items(TransactItems=writes)
    assert rows() == {"new": "after", "kept": "after", "changed": "after"}


class GenericSerializer(JSONSerializer):
    """moto's JSON serializer without the local stack's fast path for AttributeValues."""

    _serialize = ResponseSerializer._serialize


def test_attribute_values_are_written_as_moto_writes_them_without_the_fast_path() -> None:
    item = Item(
        DynamoType({"S": "pk"}),
        None,
        {
            "pk": {"S": "pk"},
            "empty": {"S": ""},
            "unicode": {"S": "\u00e9t\u00e9 \u2603"},
            "n": {"N": "-12.50"},
            "b": {"B": "AAEC/w=="},  # as the wire sends it: base64
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2.5"]},
            "bs": {"BS": ["AA==", "/w=="]},
            "null": {"NULL": True},
            "yes": {"BOOL": True},
            "no": {"BOOL": False},
            "m": {"M": {"in": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}, {"B": "AQ=="}]}, "e": {"L": []}}},
        },
    )
    result = DynamoResult({"Items": [item.attrs], "Count": 1, "ScannedCount": 1}).result
    query = get_service_model("dynamodb").operation_model("Query")
    written = [
        cls(operation_model=query, value_picker=XFormedAttributePicker()).serialize(result)["body"]
        for cls in (JSONSerializer, GenericSerializer)
    ]
    assert json.loads(written[0]) == json.loads(written[1])
    assert json.loads(written[0])["Items"][0]["b"] == {"B": "AAEC/w=="}


@pytest.mark.parametrize("size", [404_998, 404_999, 405_000, 405_001])
def test_the_item_size_limit_is_moto_s_to_the_byte(size: int) -> None:
    # Names and values of `size` bytes (moto counts a number by its digits).
    attrs = {"pk": {"S": "p"}, "v": {"S": "x" * (size - 6)}, "n": {"N": "1"}}

    def moto_s() -> None:  # what moto's own Item.__init__ does: LimitedSizeDict checks every insert
        stored = LimitedSizeDict()
        for name, value in attrs.items():
            stored[name] = DynamoType(value)

    outcomes = []
    for build in (moto_s, lambda: Item(DynamoType({"S": "p"}), None, attrs)):
        try:
            build()
            outcomes.append("stored")
        except ItemSizeTooLarge:
            outcomes.append("too large")
    assert outcomes[0] == outcomes[1] == ("stored" if size <= 405_000 else "too large")


def test_a_condition_is_checked_against_its_own_values_and_names_every_time(stack: LocalStack) -> None:
    """Parsed conditions are kept for reuse: same text, other values, unused names must all still count."""
    table = "conditions-test"
    with scratch_table(stack, table, {"pk": "S"}, ("pk",)) as ddb:
        conditions_are_checked_every_time(ddb, table)


def conditions_are_checked_every_time(ddb: Any, table: str) -> None:
    """The same condition with values that fail and pass, and with an unused name, twice over."""
    ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "v": {"N": "5"}})

    def put(limit: str, names: dict[str, str] | None = None) -> None:
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": "p"}, "v": {"N": limit}},
            ConditionExpression="#v < :v",
            ExpressionAttributeNames={"#v": "v", **(names or {})},
            ExpressionAttributeValues={":v": {"N": limit}},
        )

    for _ in range(2):
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            put("4")
        with pytest.raises(ddb.exceptions.ClientError, match=re.escape("unused in expressions: keys: {#w}")):
            put("9", names={"#w": "w"})
    put("6")
    put("7")
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "p"}})["Item"]["v"] == {"N": "7"}


def test_a_query_of_an_index_pages_in_the_index_order_at_one_megabyte(stack: LocalStack) -> None:
    """Queries skip moto's sort of the whole table: the index order and the 1 MB pages stay DynamoDB's."""
    table = "index-order-test"
    index = {
        "IndexName": "by_g",
        "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    attributes = {"pk": "S", "g": "S", "r": "N"}
    with scratch_table(stack, table, attributes, ("pk",), GlobalSecondaryIndexes=[index]) as ddb:
        pages_follow_the_index(ddb, table)


def pages_follow_the_index(ddb: Any, table: str) -> None:
    """Items written out of order come back in pages of at most 1 MB, in the index's order."""
    # 30 items of 100 KB in the queried key (3 MB), written out of order, with others between them.
    ranks = [(n * 7) % 30 for n in range(30)]
    with_pad = {"S": "x" * 100_000}
    for n, rank in enumerate(ranks):
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": f"a{n}"}, "g": {"S": "g"}, "r": {"N": str(rank)}, "pad": with_pad},
        )
        ddb.put_item(TableName=table, Item={"pk": {"S": f"b{n}"}, "g": {"S": "h"}, "r": {"N": str(rank)}})
    pages, start = [], None
    while True:
        page = ddb.query(
            TableName=table,
            IndexName="by_g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "g"}},
            **({"ExclusiveStartKey": start} if start else {}),
        )
        pages.append([int(item["r"]["N"]) for item in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if start is None:
            break
    assert [rank for page in pages for rank in page] == list(range(30))
    # DynamoDB stops a page at 1 MB read: no page holds more than ten 100 KB items.
    assert len(pages) >= 3 and all(len(page) <= 10 for page in pages)
