"""template.yaml as CloudFormation receives it: no dependency cycle, lint-clean, and operable.

The checks run over every function, table and bucket of the template, so resources added later are
held to the same rules without a change here.
"""

import copy
import json
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.transform import dependency_cycle, references, transform
from sputnik_tools.template import Template, _CfnLoader, _construct_tag, load_template
from tests.conftest import REPO, TEMPLATE

SOURCE = load_template(TEMPLATE)
FUNCTIONS = sorted(Template.load(TEMPLATE).of_type("AWS::Serverless::Function"))
TABLES = sorted(Template.load(TEMPLATE).of_type("AWS::DynamoDB::Table"))
BUCKETS = sorted(Template.load(TEMPLATE).of_type("AWS::S3::Bucket"))


@cache
def transformed() -> dict[str, Any]:
    """The template after the SAM transform (computed once: the transform takes a second)."""
    return transform(SOURCE)


def test_the_template_reads_the_same_through_libyaml_as_through_pyyamls_own_parser(tmp_path: Path) -> None:
    class PurePython(yaml.SafeLoader):
        """The loader the template had before: PyYAML's pure-Python parser, the same constructors."""

    PurePython.add_multi_constructor("!", _construct_tag)
    assert issubclass(_CfnLoader, yaml.CSafeLoader)  # the C parser is what `sputnik` commands use
    with TEMPLATE.open() as f:
        assert yaml.load(f, Loader=PurePython) == SOURCE
    # Short tags in every node kind, as the template writes them, come out in long form.
    tags = tmp_path / "tags.yaml"
    tags.write_text(
        "Resources:\n  A: {Type: T, Properties: {B: !Ref X, C: !GetAtt Y.Arn, D: !Sub [s, {k: v}],"
        " E: !If [c, !Ref Z, {Ref: AWS::NoValue}], F: !Select {i: 0}}}\n"
    )
    assert load_template(tags)["Resources"]["A"]["Properties"] == {
        "B": {"Ref": "X"},
        "C": {"Fn::GetAtt": ["Y", "Arn"]},
        "D": {"Fn::Sub": ["s", {"k": "v"}]},
        "E": {"Fn::If": ["c", {"Ref": "Z"}, {"Ref": "AWS::NoValue"}]},
        "F": {"Fn::Select": {"i": 0}},
    }


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_the_transformed_template_has_no_dependency_cycle() -> None:
    assert dependency_cycle(transformed()) is None


def test_a_bucket_referenced_by_its_own_event_function_is_found_as_a_cycle() -> None:
    # The classic SAM S3-event cycle, as the template had it: the function's environment refers to
    # the bucket whose notification waits for the function's invoke permission.
    cyclic = copy.deepcopy(SOURCE)
    env = cyclic["Resources"]["IngestFunction"]["Properties"].setdefault("Environment", {"Variables": {}})
    env["Variables"]["SPUTNIK_ARCHIVE_BUCKET"] = {"Ref": "ArchiveBucket"}
    cycle = dependency_cycle(transform(cyclic))
    assert cycle is not None
    assert {"ArchiveBucket", "IngestFunction"} <= set(cycle)
    assert cycle[0] == cycle[-1]


def test_depends_on_counts_as_a_dependency() -> None:
    cyclic = copy.deepcopy(SOURCE)
    cyclic["Resources"]["UsersTable"]["DependsOn"] = "ProjectsFunction"
    cycle = dependency_cycle(transform(cyclic))
    assert cycle is not None and "UsersTable" in cycle


def test_references_reads_ref_getatt_and_both_forms_of_sub() -> None:
    value = {
        "A": {"Ref": "Bucket"},
        "B": {"Fn::GetAtt": ["Queue", "Arn"]},
        "C": {"Fn::GetAtt": "Topic.TopicName"},
        "D": {"Fn::Sub": "${Function.Arn}/${AWS::Region}/${!Literal}/${Table}"},
        "E": {"Fn::Sub": ["${Name}-${Api}", {"Name": {"Ref": "Stage"}}]},
        "F": {"Fn::If": ["Cond", {"Ref": "Left"}, {"Ref": "AWS::NoValue"}]},
    }
    assert references(value) == {
        "Bucket",
        "Queue",
        "Topic",
        "Function",
        "AWS::Region",
        "Table",
        "Api",
        "Stage",
        "Left",
        "AWS::NoValue",
    }


def test_cfn_lint_accepts_the_transformed_template(tmp_path: Path) -> None:
    out = tmp_path / "transformed.json"
    out.write_text(json.dumps(transformed()))
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(out)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_every_transformed_function_traces_with_xray() -> None:
    functions = of_type(transformed(), "AWS::Lambda::Function")
    assert set(functions) >= set(FUNCTIONS)
    for logical, function in functions.items():
        assert function["Properties"].get("TracingConfig") == {"Mode": "Active"}, logical


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_function_has_a_log_group_with_the_retention_parameter(logical: str) -> None:
    groups = [
        g["Properties"]
        for g in of_type(SOURCE, "AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{logical}}}"}
    ]
    assert groups, f"{logical} has no log group /aws/lambda/${{{logical}}}"
    assert groups[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_function_has_an_errors_alarm_that_notifies(logical: str) -> None:
    alarms = [
        a["Properties"]
        for a in of_type(SOURCE, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/Lambda"
        and a["Properties"].get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": logical}} in a["Properties"].get("Dimensions", [])
    ]
    assert alarms, f"{logical} has no alarm on its errors"
    assert alarms[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def _invoked_asynchronously(logical: str) -> bool:
    """Whether S3, SNS or EventBridge invoke the function (asynchronous invocations, retried by Lambda)."""
    events = (SOURCE["Resources"][logical]["Properties"].get("Events") or {}).values()
    if any(e["Type"] in ("S3", "SNS", "EventBridgeRule", "CloudWatchEvent") for e in events):
        return True
    subscriptions = of_type(SOURCE, "AWS::SNS::Subscription").values()
    if any(references(s["Properties"].get("Endpoint")) == {logical} for s in subscriptions):
        return True
    rules = of_type(SOURCE, "AWS::Events::Rule").values()
    return any(logical in references(r["Properties"].get("Targets")) for r in rules)


ASYNC = [f for f in FUNCTIONS if _invoked_asynchronously(f)]


def test_the_ingest_function_is_one_of_the_asynchronously_invoked() -> None:
    assert "IngestFunction" in ASYNC and "ReconcileFunction" in ASYNC
    assert "ProjectsFunction" not in ASYNC


@pytest.mark.parametrize("logical", ASYNC)
def test_failed_asynchronous_invocations_go_to_a_queue_with_an_alarm(logical: str) -> None:
    config = SOURCE["Resources"][logical]["Properties"]["EventInvokeConfig"]
    failure = config["DestinationConfig"]["OnFailure"]
    assert failure["Type"] == "SQS"
    queue = failure["Destination"]["Fn::GetAtt"][0]
    assert SOURCE["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    alarms = [
        a["Properties"]
        for a in of_type(SOURCE, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/SQS"
        and {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        in a["Properties"]["Dimensions"]
    ]
    assert alarms and alarms[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    # The transform turns it into Lambda's own event-invoke config, which may send to the queue.
    invoke = [
        c["Properties"]
        for c in of_type(transformed(), "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": logical}
    ]
    assert invoke[0]["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue, "Arn"]}


@pytest.mark.parametrize("logical", TABLES + BUCKETS)
def test_user_data_survives_stack_deletion_and_replacement(logical: str) -> None:
    resource = SOURCE["Resources"][logical]
    assert resource.get("DeletionPolicy") == "Retain"
    assert resource.get("UpdateReplacePolicy") == "Retain"


@pytest.mark.parametrize("logical", TABLES)
def test_every_table_has_point_in_time_recovery(logical: str) -> None:
    spec = SOURCE["Resources"][logical]["Properties"]["PointInTimeRecoverySpecification"]
    assert spec == {"PointInTimeRecoveryEnabled": True}


def test_samconfig_has_a_region_and_a_dev_and_a_prod_environment() -> None:
    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    assert config["default"]["global"]["parameters"]["region"]
    stacks = set()
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["region"] and deploy["capabilities"] and deploy["resolve_s3"] is True
        assert deploy["stack_name"] == deploy["stack_name"].lower(), "bucket names derive from it"
        stacks.add(deploy["stack_name"])
        overrides = deploy["parameter_overrides"]
        assert "LogRetentionDays=" in overrides
        for assignment in overrides.split():
            assert assignment.split("=", 1)[0] in SOURCE["Parameters"], assignment
    assert len(stacks) == 2, "dev and prod are two stacks"
