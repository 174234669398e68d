"""Rules AWS documents that cfn-lint does not check, read on the template CloudFormation receives.

ResultWriter's IAM, Task timeouts above their functions', the archive subscription's region, every
function's log group created before anything can invoke it, and no IAM wildcard beyond the ones
AWS requires. Each rule runs over every resource of its kind, so resources added later are held to it.
"""

import copy
import fnmatch
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from infra.transform import dependencies, references, transform
from sputnik_tools.template import load_template
from tests.conftest import REPO, TEMPLATE

SOURCE = load_template(TEMPLATE)
MACHINES = sorted(k for k, v in SOURCE["Resources"].items() if v["Type"] == "AWS::Serverless::StateMachine")
# AWS's guide for a Distributed Map's ResultWriter (large result files are written in parts).
RESULT_WRITER_ACTIONS = {
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
}
# Lambda's init phase (up to 10 s) does not count against Timeout: a Task state must outlast both.
MIN_TIMEOUT_MARGIN = 10
# Actions that take no resource-level permissions, so AWS's guides grant them on "*": the log
# deliveries Step Functions logging needs.
UNSCOPED_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
FUNCTION_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# Resources through which AWS invokes a function (or, for a function, its code does).
INVOKER_TYPES = {
    "AWS::ApiGatewayV2::Api",
    "AWS::S3::Bucket",
    "AWS::SNS::Subscription",
    "AWS::StepFunctions::StateMachine",
    "AWS::Events::Rule",
    "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Scheduler::Schedule",
}


@cache
def transformed() -> dict[str, Any]:
    """The template after the SAM transform."""
    return transform(SOURCE)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def asl(machine: str) -> dict[str, Any]:
    """A state machine's definition, from the file its DefinitionUri names."""
    return dict(json.loads((REPO / SOURCE["Resources"][machine]["Properties"]["DefinitionUri"]).read_text()))


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, those inside Map and Parallel states included."""
    for name, state in definition.get("States", {}).items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])
        for branch in state.get("Branches", []):
            yield from states(branch)


def statements(value: Any) -> Iterator[dict[str, Any]]:
    """Every IAM policy statement inside a value."""
    if isinstance(value, dict):
        if isinstance(value.get("Statement"), list):
            yield from value["Statement"]
        for inner in value.values():
            yield from statements(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from statements(inner)


def as_list(value: Any) -> list[Any]:
    """A scalar or list as a list."""
    return value if isinstance(value, list) else [value]


def role_statements(machine: str) -> list[dict[str, Any]]:
    """The statements of a state machine's role, as the transform made it."""
    role = transformed()["Resources"][machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    policies = transformed()["Resources"][role]["Properties"].get("Policies")
    return [s for s in statements(policies) if s.get("Effect") == "Allow"]


# ---------------------------------------------------------------- ResultWriter
@pytest.mark.parametrize("machine", MACHINES)
def test_result_writers_are_granted_what_aws_documents_on_their_prefix_only(machine: str) -> None:
    writers = [s["ResultWriter"] for _, s in states(asl(machine)) if "ResultWriter" in s]
    assert writers, f"{machine} writes no Map results"
    granted = role_statements(machine)
    for writer in writers:
        bucket = writer["Parameters"]["Bucket"]  # "${TaskBucket}": a DefinitionSubstitution
        logical = SOURCE["Resources"][machine]["Properties"]["DefinitionSubstitutions"][bucket[2:-1]]["Ref"]
        prefix = writer["Parameters"]["Prefix"].rstrip("/") + "/"
        result_file = f"${{{logical}.Arn}}/{prefix}map-run-id/SUCCEEDED_0.json"
        for action in RESULT_WRITER_ACTIONS:
            covering = [
                r.get("Fn::Sub")
                for s in granted
                if action in as_list(s["Action"])
                for r in as_list(s["Resource"])
                if isinstance(r, dict) and fnmatch.fnmatchcase(result_file, str(r.get("Fn::Sub")))
            ]
            assert covering, f"{machine} may not {action} its results at {result_file}"
        # The multipart and write rights reach no further than the results.
        for s in granted:
            if set(as_list(s["Action"])) & (RESULT_WRITER_ACTIONS - {"s3:GetObject"}):
                for r in as_list(s["Resource"]):
                    assert str(r["Fn::Sub"]).startswith(f"${{{logical}.Arn}}/{prefix}"), (machine, r)


# ---------------------------------------------------------------- timeouts
def task_functions() -> Iterator[tuple[str, str, int, str]]:
    """(machine, state, TimeoutSeconds, function) for every Task state that invokes a function."""
    for machine in MACHINES:
        substitutions = SOURCE["Resources"][machine]["Properties"]["DefinitionSubstitutions"]
        for name, state in states(asl(machine)):
            if state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::lambda:invoke":
                variable = state["Parameters"]["FunctionName"][2:-1]
                function = substitutions[variable]["Fn::GetAtt"][0]
                yield machine, name, int(state["TimeoutSeconds"]), function


TASK_STATES = list(task_functions())


def test_every_machine_has_task_states_that_invoke_functions() -> None:
    assert {machine for machine, *_ in TASK_STATES} == set(MACHINES)


@pytest.mark.parametrize(("machine", "state", "timeout", "function"), TASK_STATES, ids=lambda v: str(v))
def test_every_task_state_outlasts_its_function_with_a_margin(
    machine: str, state: str, timeout: int, function: str
) -> None:
    lambda_timeout = int(transformed()["Resources"][function]["Properties"]["Timeout"])
    assert timeout >= lambda_timeout + MIN_TIMEOUT_MARGIN, (
        f"{machine}.{state} times out at {timeout} s, {function} at {lambda_timeout} s"
    )


# ---------------------------------------------------------------- the archive subscription
def evaluate(value: Any, parameters: dict[str, str]) -> Any:
    """Evaluate the intrinsic functions a subscription's Region uses: Ref, Fn::Split, Fn::Select."""
    if isinstance(value, dict) and "Ref" in value:
        return parameters[value["Ref"]]
    if isinstance(value, dict) and "Fn::Split" in value:
        separator, text = value["Fn::Split"]
        return str(evaluate(text, parameters)).split(separator)
    if isinstance(value, dict) and "Fn::Select" in value:
        index, items = value["Fn::Select"]
        return evaluate(items, parameters)[int(index)]
    return value


def test_the_archive_subscription_names_the_topics_region() -> None:
    subscription = transformed()["Resources"]["ArchiveTopicSubscription"]["Properties"]
    topics = {
        "us-west-2": "arn:aws:sns:us-west-2:608149789419:cirrus-v0-publish",
        "eu-central-1": "arn:aws:sns:eu-central-1:123456789012:another-archive",
    }
    for region, topic in topics.items():
        assert evaluate(subscription["Region"], {"ArchiveTopicArn": topic}) == region


# ---------------------------------------------------------------- log groups before invokers
def log_groups(template: dict[str, Any]) -> dict[str, str]:
    """Each function's log group (/aws/lambda/<function>), by function."""
    found = {}
    for logical, group in resources(template, "AWS::Logs::LogGroup").items():
        name = group["Properties"].get("LogGroupName")
        if isinstance(name, dict) and str(name.get("Fn::Sub", "")).startswith("/aws/lambda/${"):
            found[str(name["Fn::Sub"])[len("/aws/lambda/${") : -1]] = logical
    return found


def invokers(template: dict[str, Any]) -> dict[str, set[str]]:
    """For each function, the resources that can invoke it (through it, its aliases or its versions)."""
    all_resources = template["Resources"]
    function_of = {k: k for k in resources(template, "AWS::Lambda::Function")}
    for kind in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
        for logical, res in resources(template, kind).items():
            function_of[logical] = next(iter(references(res["Properties"]["FunctionName"])))
    found: dict[str, set[str]] = {f: set() for f in resources(template, "AWS::Lambda::Function")}
    for logical, res in all_resources.items():
        if res["Type"] not in INVOKER_TYPES:
            continue
        for name in references(res.get("Properties") or {}):
            function = function_of.get(name)
            if function is not None and function != logical:
                found[function].add(logical)
    return found


def missing_log_group_dependencies(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(invoker, log group) pairs where the invoker may be created before the group."""
    graph = dependencies(template)

    def upstream(logical: str) -> set[str]:
        seen: set[str] = set()
        todo = [logical]
        while todo:
            for needed in graph.get(todo.pop(), set()) - seen:
                seen.add(needed)
                todo.append(needed)
        return seen

    groups = log_groups(template)
    return sorted(
        (invoker, groups[function])
        for function, callers in invokers(template).items()
        for invoker in callers
        if groups[function] not in upstream(invoker)
    )


def test_every_function_has_a_log_group_and_something_that_invokes_it() -> None:
    found = invokers(transformed())
    assert set(log_groups(transformed())) == set(found)
    assert all(found.values()), {f for f, callers in found.items() if not callers}
    # The kinds of invoker the template has today are all seen.
    kinds = {transformed()["Resources"][i]["Type"] for callers in found.values() for i in callers}
    assert kinds == INVOKER_TYPES - {"AWS::Lambda::EventSourceMapping", "AWS::Scheduler::Schedule"}


def test_nothing_can_invoke_a_function_before_its_log_group_exists() -> None:
    assert missing_log_group_dependencies(transformed()) == []


def test_a_notification_created_before_its_functions_log_group_is_found() -> None:
    careless = copy.deepcopy(SOURCE)
    del careless["Resources"]["ArchiveBucket"]["DependsOn"]
    del careless["Resources"]["ExecutionFailedRule"]["DependsOn"]
    assert missing_log_group_dependencies(transform(careless)) == [
        ("ArchiveBucket", "IngestFunctionLogs"),
        ("ExecutionFailedRule", "ReconcileFunctionLogs"),
    ]


# ---------------------------------------------------------------- least privilege
def test_no_policy_grants_a_wildcard_beyond_what_aws_requires() -> None:
    for logical, res in transformed()["Resources"].items():
        for statement in statements(res.get("Properties") or {}):
            actions = as_list(statement.get("Action", []))
            assert all(a != "*" and not a.endswith(":*") for a in actions), (logical, actions)
            if "*" in as_list(statement.get("Resource")):
                assert set(actions) <= UNSCOPED_ACTIONS, (logical, actions)


def test_roles_have_no_managed_policies_but_lambdas_logging_and_tracing() -> None:
    for logical, role in resources(transformed(), "AWS::IAM::Role").items():
        assert set(role["Properties"].get("ManagedPolicyArns") or []) <= FUNCTION_MANAGED_POLICIES, logical


# ---------------------------------------------------------------- executions that end past their Catch
@pytest.mark.parametrize("machine", MACHINES)
def test_every_machine_logs_its_errors_to_a_log_group_with_retention(machine: str) -> None:
    props = transformed()["Resources"][machine]["Properties"]
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"
    [destination] = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group_props = SOURCE["Resources"][group]["Properties"]
    assert group_props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert str(group_props["LogGroupName"]["Fn::Sub"]).startswith("/aws/vendedlogs/states/")
    unscoped = {a for s in role_statements(machine) if s["Resource"] == "*" for a in as_list(s["Action"])}
    assert unscoped == UNSCOPED_ACTIONS, "the log deliveries AWS's guide to Step Functions logging grants"


def test_failed_and_timed_out_executions_of_every_machine_raise_an_alarm() -> None:
    alarm = SOURCE["Resources"]["TaskExecutionsFailedAlarm"]["Properties"]
    watched = {
        (m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"])
        for m in alarm["Metrics"]
        if "MetricStat" in m and m["MetricStat"]["Metric"]["Namespace"] == "AWS/States"
    }
    assert watched == {(metric, m) for metric in ("ExecutionsFailed", "ExecutionsTimedOut") for m in MACHINES}
    [summed] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert all(m["Id"] in summed["Expression"] for m in alarm["Metrics"] if "MetricStat" in m)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_reconciler_hears_of_every_task_execution_that_fails_times_out_or_is_aborted() -> None:
    rule = transformed()["Resources"]["ExecutionFailedRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert sorted(r["Ref"] for r in pattern["detail"]["stateMachineArn"]) == MACHINES
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}
    permissions = [
        p["Properties"]
        for p in resources(transformed(), "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": "ReconcileFunction"}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "ReconcileFunction"},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["ExecutionFailedRule", "Arn"]},
        }
    ]
