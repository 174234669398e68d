"""The `sputnik users` command against the local stack through AWS_ENDPOINT_URL."""

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sputnik import auth
from sputnik_tools import cli
from tests.conftest import new_user, run_cli


@pytest.mark.allow_scan
def test_users_add_list_remove(stack: Any) -> None:
    login = f"cli{os.getpid()}"
    added = run_cli(stack, "users", "add", login, "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert auth.authenticate(login, "a long password").login == login
    listed = run_cli(stack, "users", "list")
    assert login in listed.stdout.split()
    assert not any(line.startswith("!") for line in listed.stdout.split())
    removed = run_cli(stack, "users", "remove", login)
    assert removed.returncode == 0, removed.stderr
    assert login not in run_cli(stack, "users", "list").stdout.split()


def test_users_add_rejects_a_short_password(stack: Any) -> None:
    result = run_cli(stack, "users", "add", "shorty", "--password-stdin", stdin="abc\n")
    assert result.returncode == 1
    assert "at least" in result.stderr


def test_users_remove_unknown(stack: Any) -> None:
    result = run_cli(stack, "users", "remove", "no-such-login")
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
    added = run_cli(
        stack, "--stack", "deployed", "users", "add", "carol", "--password-stdin", stdin="carol's password\n"
    )
    assert added.returncode == 0, added.stderr
    rows = stack.client("dynamodb").scan(TableName="deployed-users-x1")["Items"]
    assert [r["login"]["S"] for r in rows] == ["carol"]
    assert "carol" not in run_cli(stack, "users", "list").stdout.split()  # the local table is untouched


def test_archive_generate_and_upload_write_scenes_that_get_ingested(stack: Any, fixtures_dir: Any) -> None:
    from sputnik.models import SceneModel

    generated = run_cli(
        stack, "archive", "generate", "--tiles", "33TXL", "--dates", "2023-01-05", "--size", "32"
    )
    assert generated.returncode == 0, generated.stderr
    (url,) = generated.stdout.split()
    assert re.fullmatch(
        r"s3://[a-z0-9.-]+/sentinel-s2-l2a-cogs/33/T/XL/2023/1/(S2[AB]_33TXL_20230105_0_L2A)/\1\.json", url
    )
    assert SceneModel.get(url.rsplit("/", 1)[1].removesuffix(".json")).tile == "33TXL"

    folder = fixtures_dir / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
    uploaded = run_cli(stack, "archive", "upload", str(folder))
    assert uploaded.returncode == 0, uploaded.stderr
    assert SceneModel.get("S2A_29RKH_20200219_0_L2A").filename.startswith("S2A_MSIL2A_20200219")

    bad = run_cli(stack, "archive", "generate", "--tiles", "99ZZZ", "--dates", "2023-01-05")
    assert bad.returncode == 1 and "sputnik:" in bad.stderr


def test_users_add_works_whatever_region_the_shell_has_set(stack: Any) -> None:
    login = f"region{os.getpid()}"
    added = run_cli(
        stack,
        *("users", "add", login, "--password-stdin"),
        stdin="a long password\n",
        env_extra={"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"},
    )
    assert added.returncode == 0, added.stderr
    assert auth.authenticate(login, "a long password").login == login


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
    result = run_cli(stack, *args, stdin="a long password\n")
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


def _records_of(project_id: int) -> dict[str, int]:
    """How many records of each kind a project has."""
    from sputnik.models import MetaModel, ProcModel, ProductModel, ProjectModel

    return {
        "project": ProjectModel.count(project_id),
        "meta": MetaModel.count(project_id),
        "procs": ProcModel.count(project_id),
        "products": ProductModel.count(project_id),
    }


def test_users_remove_says_what_the_user_owns_and_deletes_it_only_when_asked(stack: Any, front: Any) -> None:
    import httpx

    from sputnik.settings import get_settings
    from tests.support.openapi import create_real_ids

    real = create_real_ids(stack, front.url, "leaving")
    login, pid = real.auth[0], real.project_id
    assert _records_of(pid) == {"project": 1, "meta": 1, "procs": 1, "products": 1}

    refused = run_cli(stack, "users", "remove", login)
    assert refused.returncode == 1
    assert (
        f"{login} owns 1 projects (ids {pid}) with 1 scene records, 1 procs and 1 products" in refused.stderr
    )
    assert "--delete-data" in refused.stderr
    assert auth.authenticate(*real.auth).login == login  # nothing was removed
    assert _records_of(pid)["project"] == 1

    removed = run_cli(stack, "users", "remove", login, "--delete-data")
    assert removed.returncode == 0, removed.stderr
    assert f"owned 1 projects (ids {pid})" in removed.stdout
    assert _records_of(pid) == {"project": 0, "meta": 0, "procs": 0, "products": 0}
    s3 = stack.client("s3")
    assert (
        s3.list_objects_v2(Bucket=get_settings().products_bucket, Prefix=f"projects/{pid}/")["KeyCount"] == 0
    )

    # The login made again is a new user: it starts empty.
    assert (
        run_cli(stack, "users", "add", login, "--password-stdin", stdin=real.auth[1] + "\n").returncode == 0
    )
    with httpx.Client(base_url=front.url, auth=real.auth, timeout=60) as again:
        assert again.get("/project/list").json() == {"projects": []}
        assert again.get("/project/info", params={"project_id": pid}).status_code == 404


def test_users_remove_without_data_needs_no_flag(stack: Any) -> None:
    login, _ = new_user("empty")
    removed = run_cli(stack, "users", "remove", login)
    assert removed.returncode == 0, removed.stderr
    assert "owned 0 projects" in removed.stdout


@pytest.mark.allow_scan
def test_users_migrate_ids_gives_old_logins_ids_and_reowns_their_projects(stack: Any, front: Any) -> None:
    import httpx

    from sputnik.models import CounterModel, ProjectModel, ProjectTileModel, UserModel
    from sputnik.quotas import projects_key
    from tests.support.tasks import tile_project

    login, password = new_user("legacy")
    with httpx.Client(base_url=front.url, auth=(login, password), timeout=60) as api:
        pid = tile_project(api, "34TDQ")
    # Make them what a stack before user ids stored: a login without id, projects owned by the login.
    UserModel(login).update(actions=[UserModel.user_id.remove(), UserModel.credential_version.remove()])
    project = ProjectModel.get(pid)
    project.update(actions=[ProjectModel.owner.remove(), ProjectModel.login.set(login)])
    for tile in project.tiles:
        ProjectTileModel(tile, pid).update(actions=[ProjectTileModel.owner.remove()])
    auth.clear_cache()
    with pytest.raises(auth.Unauthorized):  # an old login owns nothing until migrated
        auth.authenticate(login, password)

    first = run_cli(stack, "users", "migrate-ids")
    assert first.returncode == 0, first.stderr
    owner = UserModel.get(login).user_id
    assert owner
    assert "0 projects" not in first.stdout
    with httpx.Client(base_url=front.url, auth=(login, password), timeout=60) as api:
        assert [p["project_id"] for p in api.get("/project/list").json()["projects"]] == [pid]
    assert {ProjectTileModel.get(t, pid).owner for t in project.tiles} == {owner}
    assert CounterModel.get(projects_key(owner)).value == 1

    again = run_cli(stack, "users", "migrate-ids")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("ids given to 0 users; 0 projects and 0 procs re-owned")
    assert UserModel.get(login).user_id == owner
    assert CounterModel.get(projects_key(owner)).value == 1
