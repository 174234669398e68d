"""The state machines: every ASL file linted for the rules of processing, wired as the task registry says."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sputnik.settings import get_settings
from sputnik.tasks.registry import TASKS
from sputnik_tools.template import Template
from tests.conftest import REPO, TEMPLATE

ASL_FILES = sorted((REPO / "infra" / "statemachines").glob("*.asl.json"))
TRANSIENT = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"}


def states(definition: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, those inside Map and Parallel states included, with its path."""
    for name, state in definition.get("States", {}).items():
        yield f"{path}{name}", state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"], f"{path}{name}/")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from states(branch, f"{path}{name}[{i}]/")


def load(path: Path) -> dict[str, Any]:
    """An ASL file."""
    return dict(json.loads(path.read_text()))


def test_there_is_a_state_machine_per_task() -> None:
    assert {p.name for p in ASL_FILES} == {f"{name}.asl.json" for name in TASKS}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_task_state_has_a_timeout_a_retry_with_jittered_backoff_and_a_catch(path: Path) -> None:
    tasks = [(name, s) for name, s in states(load(path)) if s["Type"] == "Task"]
    assert tasks
    for name, state in tasks:
        # Above its function's Timeout: tests/test_template_rules.py checks the margin.
        assert isinstance(state.get("TimeoutSeconds"), int) and state["TimeoutSeconds"] > 0, name
        retries = state.get("Retry") or []
        transient = [r for r in retries if set(r["ErrorEquals"]) >= TRANSIENT]
        assert transient, f"{name} does not retry transient Lambda errors"
        for retry in transient:
            assert retry["BackoffRate"] > 1 and retry["IntervalSeconds"] >= 1, name
            assert retry["JitterStrategy"] == "FULL" and retry["MaxAttempts"] >= 2, name
            assert "States.ALL" not in retry["ErrorEquals"], f"{name} retries errors that are not transient"
        catches = state.get("Catch") or []
        assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} has no Catch for every error"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_item_lists_travel_in_s3_manifests_never_in_the_payload(path: Path) -> None:
    maps = [(name, s) for name, s in states(load(path)) if s["Type"] == "Map"]
    assert maps
    for name, state in maps:
        assert "ItemsPath" not in state and "Items" not in state, name
        reader = state["ItemReader"]
        assert reader["Resource"] == "arn:aws:states:::s3:getObject", name
        assert reader["ReaderConfig"]["InputType"] == "JSON", name
        assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED", name
        assert state["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject", name
        # The count form only: moto rejects ToleratedFailurePercentage.
        assert isinstance(state["ToleratedFailureCount"], int), name
        assert "ToleratedFailurePercentage" not in state, name
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch") or []), name
    for name, state in states(load(path)):
        # Only the keys of the proc and small manifests' locations pass between states.
        assert "ItemsPath" not in state, name


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_failure_is_recorded_before_the_execution_fails(path: Path) -> None:
    definition = load(path)
    top = definition["States"]
    for name, state in top.items():
        for catch in state.get("Catch") or []:
            assert catch["Next"] in ("RecordFailure", "Failed"), name
    assert top["RecordFailure"]["Next"] == "Failed" and top["Failed"]["Type"] == "Fail"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_template_wires_each_tasks_machine(name: str) -> None:
    task = TASKS[name]
    template = Template.load(TEMPLATE)
    machine = template.resources[task.machine]
    assert machine["Type"] == "AWS::Serverless::StateMachine"
    props = machine["Properties"]
    text = (REPO / props["DefinitionUri"]).read_text()
    assert Path(props["DefinitionUri"]).name == f"{name}.asl.json"
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(props["DefinitionSubstitutions"])
    # What the tasks function is told is the machine the local stack made (and what the tests read).
    env = template.function_environment("TasksFunction")
    arn = env[f"SPUTNIK_{task.machine_setting.upper()}"]
    assert arn == template.arn(task.machine) == task.machine_arn(get_settings())
    # Each stage function of the machine may touch only what it needs: no function gets a wildcard.
    for logical in props["DefinitionSubstitutions"]:
        if logical.endswith("Function"):
            policies = template.resources[logical]["Properties"].get("Policies", [])
            assert not wildcard_statements(policies), logical


def wildcard_statements(policies: Any) -> list[dict[str, Any]]:
    """The IAM statements of a function's policies whose Resource is, or lists, the wildcard `*`."""
    statements = []
    for policy in policies if isinstance(policies, list) else [policies]:
        if isinstance(policy, dict) and "Statement" in policy:
            found = policy["Statement"]
            statements += found if isinstance(found, list) else [found]
    return [
        st
        for st in statements
        if "*" in (st.get("Resource") if isinstance(st.get("Resource"), list) else [st.get("Resource")])
    ]


def test_the_wildcard_check_reads_statements_as_iam_does() -> None:
    wild = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:x", "*"]}]}
    spaced = {"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}
    narrow = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}]}
    assert len(wildcard_statements([wild, spaced, narrow, "AWSLambdaBasicExecutionRole"])) == 2


def execution_order(definition: dict[str, Any]) -> list[str]:
    """The top-level states as an execution without failures runs them: from StartAt along each Next."""
    order, name = [], definition["StartAt"]
    while name is not None:
        assert name not in order, f"the states loop at {name}"
        order.append(name)
        state = definition["States"][name]
        name = state.get("Next")
        assert name is not None or state.get("End") or state["Type"] in ("Succeed", "Fail"), order
    return order


def test_the_scripts_of_each_task_are_its_stages_in_order() -> None:
    for name, task in TASKS.items():
        definition = load(REPO / "infra" / "statemachines" / f"{name}.asl.json")
        assert execution_order(definition) == [_camel(script) for script in task.scripts], name


def _camel(script: str) -> str:
    """A script's name as the template and the ASL spell it: scan_month -> ScanMonth."""
    return "".join(part.capitalize() for part in script.split("_"))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_stage_has_one_name_across_registry_code_folder_template_and_asl(name: str) -> None:
    task = TASKS[name]
    definition = load(REPO / "infra" / "statemachines" / f"{name}.asl.json")
    template = Template.load(TEMPLATE)
    top = [s for s in definition["States"] if s not in ("RecordFailure", "Failed")]
    assert top == [_camel(script) for script in task.scripts], "the ASL's stages are the registry's scripts"
    for script in task.scripts:
        function = f"{_camel(script)}Function"
        assert (REPO / "layers/sputnik/sputnik/tasks" / f"{script}.py").is_file(), script
        assert template.resources[function]["Properties"]["CodeUri"] == f"functions/stage_{script}/", script
        app = (REPO / "functions" / f"stage_{script}" / "app.py").read_text()
        assert f"from sputnik.tasks import {script}\n" in app, script
        assert "${" + function + "}" in json.dumps(definition), f"the ASL invokes {function}"
