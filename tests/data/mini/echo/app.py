"""A test function: doubles numbers, copies dropped objects, answers HTTP."""

import json
import os
from typing import Any
from urllib.parse import unquote_plus

import boto3


def handler(event: dict[str, Any], context: Any) -> Any:
    """Answer whichever kind of event arrives."""
    if "Records" in event:
        s3 = boto3.client("s3")
        for record in event["Records"]:
            key = unquote_plus(record["s3"]["object"]["key"])  # S3 sends keys URL-encoded
            s3.put_object(Bucket=os.environ["MINI_BUCKET"], Key=key.replace("in/", "out/", 1), Body=b"seen")
        return {"copied": len(event["Records"])}
    if event.get("version") == "2.0":
        body = {
            "route": event["routeKey"],
            "params": event.get("pathParameters"),
            "fn": context.function_name,
        }
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"doubled": event["n"] * 2}
