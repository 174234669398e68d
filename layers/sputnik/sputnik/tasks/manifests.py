"""Item lists of a proc as S3 manifests, and the results a Map's ResultWriter left beside them.

Lists never travel in a state's payload (256 KB limit): a stage writes them to the task bucket,
the Map's ItemReader reads them, and its ResultWriter writes what each item did.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from sputnik import aws
from sputnik.settings import get_settings


@dataclass(frozen=True)
class Failure:
    """An item whose iteration failed: its input, and the error Step Functions recorded."""

    item: dict[str, Any]
    error: dict[str, str]


@dataclass
class Results:
    """What a Map run did, item by item."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def proc_prefix(event_id: int) -> str:
    """Folder of one proc's objects in the task bucket."""
    return f"procs/{event_id}/"


def write_manifest(event_id: int, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Store a proc's item list; where it is and how long it is."""
    bucket = get_settings().task_bucket
    key = f"{proc_prefix(event_id)}{name}.json"
    aws.client("s3").put_object(
        Bucket=bucket, Key=key, Body=json.dumps(items).encode(), ContentType="application/json"
    )
    return {"bucket": bucket, "key": key, "count": len(items)}


def _read_json(s3: Any, bucket: str, key: str) -> Any:
    """One JSON object of the task bucket."""
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _parsed(value: Any) -> Any:
    """ResultWriter stores inputs and outputs as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_results(details: dict[str, Any]) -> Results:
    """Read the result files a ResultWriter manifest (`ResultWriterDetails`: Bucket, Key) lists."""
    s3 = aws.client("s3")
    bucket = str(details["Bucket"])
    manifest = _read_json(s3, bucket, str(details["Key"]))
    results = Results()
    files = manifest.get("ResultFiles") or {}
    for entry in files.get("SUCCEEDED") or []:
        for run in _read_json(s3, bucket, entry["Key"]):
            output = _parsed(run.get("Output"))
            results.outputs.append(output if isinstance(output, dict) else {})
    for status in ("FAILED", "PENDING"):
        for entry in files.get(status) or []:
            for run in _read_json(s3, bucket, entry["Key"]):
                item = _parsed(run.get("Input"))
                error = {"Error": str(run.get("Error") or status), "Cause": str(run.get("Cause") or "")}
                results.failures.append(Failure(item if isinstance(item, dict) else {}, error))
    return results
