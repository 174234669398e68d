"""The `sputnik users` command against the local stack through AWS_ENDPOINT_URL."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sputnik import auth
from sputnik_tools import cli


def _sputnik(
    stack: Any, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process pointed at the stack, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPUTNIK_"))}
    env["AWS_ENDPOINT_URL"] = stack.endpoint
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "sputnik_tools.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.allow_scan
def test_users_add_list_remove(stack: Any) -> None:
    login = f"cli{os.getpid()}"
    added = _sputnik(stack, "users", "add", login, "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert auth.authenticate(login, "a long password") == login
    listed = _sputnik(stack, "users", "list")
    assert login in listed.stdout.split()
    assert not any(line.startswith("!") for line in listed.stdout.split())
    removed = _sputnik(stack, "users", "remove", login)
    assert removed.returncode == 0, removed.stderr
    assert login not in _sputnik(stack, "users", "list").stdout.split()


def test_users_add_rejects_a_short_password(stack: Any) -> None:
    result = _sputnik(stack, "users", "add", "shorty", "--password-stdin", stdin="abc\n")
    assert result.returncode == 1
    assert "at least" in result.stderr


def test_users_remove_unknown(stack: Any) -> None:
    result = _sputnik(stack, "users", "remove", "no-such-login")
    assert result.returncode == 1
    assert "no user" in result.stderr


@pytest.mark.allow_scan
def test_scan_guard_sees_scans(stack: Any, dynamo_calls: Any) -> None:
    # The autouse guard fails every test that Scans; here it must have seen this admin Scan.
    auth.list_users()
    assert dynamo_calls.count("Scan") == 1


@pytest.mark.allow_scan
def test_stack_option_reads_the_physical_names_of_a_deployed_stack(stack: Any) -> None:
    # A CloudFormation stack in the local endpoint whose UsersTable has a name of its own.
    template = {
        "Resources": {
            "UsersTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "deployed-users-x1",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "login", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "login", "KeyType": "HASH"}],
                },
            }
        }
    }
    stack.client("cloudformation").create_stack(StackName="deployed", TemplateBody=json.dumps(template))
    added = _sputnik(
        stack, "--stack", "deployed", "users", "add", "carol", "--password-stdin", stdin="carol's password\n"
    )
    assert added.returncode == 0, added.stderr
    rows = stack.client("dynamodb").scan(TableName="deployed-users-x1")["Items"]
    assert [r["login"]["S"] for r in rows] == ["carol"]
    assert "carol" not in _sputnik(stack, "users", "list").stdout.split()  # the local table is untouched


def test_archive_generate_and_upload_write_scenes_that_get_ingested(stack: Any, fixtures_dir: Any) -> None:
    from sputnik.models import SceneModel

    generated = _sputnik(
        stack, "archive", "generate", "--tiles", "33TXL", "--dates", "2023-01-05", "--size", "32"
    )
    assert generated.returncode == 0, generated.stderr
    (url,) = generated.stdout.split()
    assert re.fullmatch(
        r"s3://[a-z0-9.-]+/sentinel-s2-l2a-cogs/33/T/XL/2023/1/(S2[AB]_33TXL_20230105_0_L2A)/\1\.json", url
    )
    assert SceneModel.get(url.rsplit("/", 1)[1].removesuffix(".json")).tile == "33TXL"

    folder = fixtures_dir / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
    uploaded = _sputnik(stack, "archive", "upload", str(folder))
    assert uploaded.returncode == 0, uploaded.stderr
    assert SceneModel.get("S2A_29RKH_20200219_0_L2A").filename.startswith("S2A_MSIL2A_20200219")

    bad = _sputnik(stack, "archive", "generate", "--tiles", "99ZZZ", "--dates", "2023-01-05")
    assert bad.returncode == 1 and "sputnik:" in bad.stderr


def test_users_add_works_whatever_region_the_shell_has_set(stack: Any) -> None:
    login = f"region{os.getpid()}"
    added = _sputnik(
        stack,
        *("users", "add", login, "--password-stdin"),
        stdin="a long password\n",
        env_extra={"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"},
    )
    assert added.returncode == 0, added.stderr
    assert auth.authenticate(login, "a long password") == login


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ("--region", "eu-west-1", "users", "add", "someone", "--password-stdin"),
            "tables are not in region eu-west-1",
        ),
        (("--stack", "no-such-stack", "users", "list"), "no stack 'no-such-stack' in region us-east-1"),
    ],
)
def test_a_wrong_region_or_stack_says_in_one_line_what_to_set(
    stack: Any, args: tuple[str, ...], expected: str
) -> None:
    result = _sputnik(stack, *args, stdin="a long password\n")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert expected in line and "set AWS_DEFAULT_REGION or --region" in line


@pytest.mark.parametrize(("flags", "disabled"), [([], "true"), (["--metrics"], "false")])
def test_local_prints_metrics_lines_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], disabled: str
) -> None:
    """`sputnik local` turns Powertools' EMF lines off (they bury the logs on a laptop) unless --metrics."""
    from sputnik_tools.local import run

    served: list[Path] = []
    monkeypatch.setattr(run, "serve", lambda template, port, aws_port: served.append(template))
    # Set first, so that monkeypatch restores what was there: `sputnik local` sets os.environ itself.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "unset by this test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    assert cli.main(["local", "--template", "template.yaml", *flags]) == 0
    assert served == [Path("template.yaml")]
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == disabled
