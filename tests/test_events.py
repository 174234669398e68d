"""events/: a sample event per function, and `sputnik invoke` runs each one in the local stack.

The events refer to `make run`'s demo data (user demo, project 2 with the real scene and its RGB
product), so this starts `sputnik local` as a user does and invokes every event through the CLI.
"""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sputnik import cli
from sputnik.local.stack import free_port
from sputnik.local.template import Template
from tests.conftest import REPO, TEMPLATE

EVENTS = REPO / "events"
FUNCTIONS = sorted(Template.load(TEMPLATE).of_type("AWS::Serverless::Function"))
EVENT_FILES = sorted(EVENTS.glob("*/*.json"))
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def local_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`sputnik local` with its demo data, in a process of its own; its AWS endpoint."""
    aws_port = free_port()
    output = tmp_path_factory.mktemp("local") / "output.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPUTNIK_", "MOTO_"))}
    with output.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sputnik.cli",
                "local",
                "--port",
                str(free_port()),
                "--aws-port",
                str(aws_port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while "sputnik local stack is up" not in output.read_text():
            if process.poll() is not None:
                pytest.fail(f"sputnik local exited with {process.returncode}:\n{output.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{aws_port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_function_has_a_sample_event(logical: str) -> None:
    assert sorted((EVENTS / logical).glob("*.json")), f"events/{logical}/ has no sample event"


def test_every_event_belongs_to_a_function_of_the_template() -> None:
    assert EVENT_FILES
    assert {path.parent.name for path in EVENT_FILES} <= set(FUNCTIONS)


def test_http_events_are_routes_of_their_function() -> None:
    routes = Template.load(TEMPLATE).routes()
    for path in EVENT_FILES:
        event = json.loads(path.read_text())
        if event.get("version") == "2.0":
            function = path.parent.name
            assert any(r.route_key == event["routeKey"] and r.function == function for r in routes), path
            method, _ = event["routeKey"].split(" ", 1)
            assert event["requestContext"]["http"]["method"] == method


def invoke(
    endpoint: str, path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> tuple[int, Any]:
    """`sputnik invoke FUNCTION EVENT` against the local endpoint: exit code and printed result."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    code = cli.main(["invoke", path.parent.name, str(path.relative_to(REPO))])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_event_runs_through_sputnik_invoke(
    path: Path, local_endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = invoke(local_endpoint, path, capsys, monkeypatch)
    assert code == 0, result
    event = json.loads(path.read_text())
    if event.get("version") == "2.0":
        assert result["statusCode"] == 200, result
        body = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
        if result["headers"]["content-type"] == "image/png":
            assert body.startswith(PNG)
        else:
            assert json.loads(body), result
    else:
        # Ingest: every object the event announces is catalogued, and the scene meets a demo project.
        assert result.get("skipped", 0) == 0, result
        assert result["matched"] >= 1, result


def test_invoke_names_the_functions_of_the_template_when_the_function_is_unknown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["invoke", "NoSuchFunction", "events/MetaFunction/meta-dates.json"]) == 1
    err = capsys.readouterr().err
    assert "has no function NoSuchFunction" in err and "MetaFunction" in err


def test_invoke_reports_a_failing_function_with_exit_code_1(
    local_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "IngestFunction" / "broken.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps({"backfill_project": "not a number"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_endpoint)
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    assert cli.main(["invoke", "IngestFunction", str(broken)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["errorType"] == "ValueError"
    assert "IngestFunction failed" in captured.err
