"""Injected AWS faults during project creation and ingest: retried to success, or failed whole.

The faults are real error responses (DynamoDB throttling, S3 SlowDown/500, Lambda 429) handed to
botocore below its retry logic, so the SDK's own retries are exercised as on AWS.
"""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pynamodb.exceptions import DoesNotExist

from sputnik import ingest
from sputnik.models import MetaModel, SceneModel
from sputnik.settings import get_settings
from tests.support import faults
from tests.support.ingest import fresh_scene, s3_event

SQUARE = json.dumps(
    {"type": "Polygon", "coordinates": [[[15.0, 46.0], [15.2, 46.0], [15.2, 46.2], [15.0, 46.0]]]}
)


def _create(api: httpx.Client) -> httpx.Response:
    return api.post("/project/new", json={"name": "faulty", "border": SQUARE})


@pytest.mark.parametrize(
    "operation,answer",
    [
        ("UpdateItem", faults.DYNAMODB_THROTTLED),  # the user's project count, then the id counter
        ("TransactWriteItems", faults.DYNAMODB_THROTTLED),  # the project and its tile rows
    ],
)
def test_project_creation_retries_transient_throttling(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, operation: str, answer: Any
) -> None:
    # Only the creation's own calls: the backfill it asks for may write meta records in transactions.
    table = (
        get_settings().counters_table if operation == "UpdateItem" else get_settings().projects_table
    ).encode()
    fault = faults.Fault(
        lambda r: faults.dynamodb(operation)(r) and table in bytes(r.body or b""), answer, times=2
    )
    faults.inject(monkeypatch, fault)
    r = _create(api)
    assert r.status_code == 200, r.text
    # Two failures, the call that passed, and (for UpdateItem) the id counter after the project count.
    assert fault.failed == 2 and fault.seen == (4 if operation == "UpdateItem" else 3)
    assert [p["project_id"] for p in api.get("/project/list").json()["projects"]] == [r.json()["project_id"]]


@pytest.mark.parametrize(
    "matches,answer",
    [
        (faults.dynamodb("UpdateItem"), faults.DYNAMODB_THROTTLED),
        (faults.dynamodb("TransactWriteItems"), faults.DYNAMODB_THROTTLED),
        (faults.lambda_invoke, faults.LAMBDA_THROTTLED),  # the backfill request, after the project is stored
    ],
)
def test_project_creation_under_lasting_throttling_fails_whole_with_503(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, matches: Any, answer: Any
) -> None:
    fault = faults.Fault(matches, answer)
    faults.inject(monkeypatch, fault)
    r = _create(api)
    assert r.status_code == 503, r.text
    assert r.json() == {"detail": "busy: try again shortly"} and r.headers["retry-after"] == "1"
    assert fault.failed > 1  # retried before giving up
    fault.stop()
    assert api.get("/project/list").json() == {"projects": []}  # nothing stays behind
    assert _create(api).status_code == 200  # and the client's retry works


@pytest.mark.parametrize(
    "kind,transient",
    [
        ("s3-slowdown", True),
        ("s3-internal", True),
        ("dynamodb-query", True),
        ("s3-slowdown", False),
        ("dynamodb-query", False),
    ],
)
def test_ingest_under_faults_retries_or_fails_whole(
    stack: Any,
    api: httpx.Client,
    fixtures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    transient: bool,
) -> None:
    key, scene_id, project = fresh_scene(
        stack, fixtures_dir, api, f"S2A_33TWN_20210905_{1 if transient else 2}_L2A"
    )
    matches, answer = {
        "s3-slowdown": (faults.s3_get(scene_id), faults.S3_SLOW_DOWN),
        "s3-internal": (faults.s3_get(scene_id), faults.S3_INTERNAL),
        "dynamodb-query": (faults.dynamodb("Query"), faults.DYNAMODB_THROTTLED),
    }[kind]
    fault = faults.Fault(matches, answer, times=2 if transient else None)
    with monkeypatch.context() as patched:
        faults.inject(patched, fault)
        if transient:
            assert ingest.handle(s3_event(key, sequencer="E" * 30))["ingested"] == 1
            assert fault.failed == 2
            assert SceneModel.get(scene_id).item_key == key
            assert [m.scene_id for m in MetaModel.query(project)] == [scene_id]
            return
        with pytest.raises(
            Exception
        ) as failure:  # the invocation fails; Lambda retries it, then the DLQ keeps it
            ingest.handle(s3_event(key, sequencer="E" * 30))
    assert "SlowDown" in str(failure.value) or "ProvisionedThroughputExceeded" in str(failure.value)
    assert fault.failed > 1  # retried before giving up
    with pytest.raises(DoesNotExist):
        SceneModel.get(scene_id)
    assert list(MetaModel.query(project)) == []
    assert ingest.handle(s3_event(key, sequencer="E" * 30))["ingested"] == 1  # the redelivery
    assert [m.scene_id for m in MetaModel.query(project)] == [scene_id]
