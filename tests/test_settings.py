"""Settings as Lambda gives them: the template's variables, no defaults, init refused without them."""

import ast
import json
import os
import subprocess
from typing import Any

import pytest

from sputnik.settings import PREFIX, MissingSettings, Settings, variable
from sputnik.tasks.registry import TASKS
from sputnik_tools.local_settings import stack_environment
from sputnik_tools.template import Template
from tests.conftest import REPO, TEMPLATE
from tests.support.warm import WARM

TEMPLATE_MODEL = Template.load(TEMPLATE)
FUNCTIONS = sorted(TEMPLATE_MODEL.of_type("AWS::Serverless::Function"))
LIBRARY = REPO / "layers" / "sputnik" / "sputnik"
STACK_WIDE = {variable(name) for name in Settings.stack_wide()}
FUNCTION_SPECIFIC = {variable(f) for f in Settings.__dataclass_fields__} - STACK_WIDE
# What Lambda's runtime sets in every function's environment (AWS documents these reserved variables).
LAMBDA = {
    "AWS_LAMBDA_FUNCTION_NAME": "",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
}


def _globals() -> dict[str, Any]:
    """template.yaml's Globals variables, unresolved."""
    return dict(TEMPLATE_MODEL.data["Globals"]["Function"]["Environment"]["Variables"])


def _own(logical: str) -> dict[str, Any]:
    """A function's own variables in template.yaml (beside Globals), unresolved."""
    props = TEMPLATE_MODEL.resources[logical].get("Properties") or {}
    return dict((props.get("Environment") or {}).get("Variables") or {})


def _sputnik_variables(logical: str) -> set[str]:
    """The SPUTNIK_* variables the template gives one function."""
    return {k for k in TEMPLATE_MODEL.function_environment(logical) if k.startswith(PREFIX)}


def _init(logical: str, drop: frozenset[str] | set[str] = frozenset()) -> subprocess.CompletedProcess[str]:
    """Import a function's handler module in a fresh interpreter, as Lambda's init does.

    The environment is what Lambda would give it: the template's variables for that function
    (resolved to the local stack's names) less `drop`, and the runtime's reserved variables; none
    of the SPUTNIK_* variables this test process has.
    """
    props = TEMPLATE_MODEL.resources[logical]["Properties"]
    code_dir = REPO / props["CodeUri"]
    module = str(props.get("Handler", TEMPLATE_MODEL.data["Globals"]["Function"]["Handler"])).rsplit(".", 1)[
        0
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith((PREFIX, "AWS_", "POWERTOOLS_"))}
    env.update({k: v for k, v in TEMPLATE_MODEL.function_environment(logical).items() if k not in drop})
    env.update({**LAMBDA, "AWS_LAMBDA_FUNCTION_NAME": logical})
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('app', {str(code_dir / (module + '.py'))!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('started', callable(m.handler))"
    )
    return WARM.run(["-c", code], cwd=code_dir, env=env)


def _missing_named(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The variables a failed init's MissingSettings names (its last line of stderr)."""
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sputnik.settings.MissingSettings: missing environment variables "), last
    listed = last.removeprefix("sputnik.settings.MissingSettings: missing environment variables ")
    return set(listed.split(":", 1)[0].split(", "))


def test_the_stack_wide_settings_are_exactly_the_templates_globals() -> None:
    assert {k for k in _globals() if k.startswith(PREFIX)} == STACK_WIDE


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_a_function_is_given_only_settings_the_library_has(logical: str) -> None:
    own = {k for k in _own(logical) if k.startswith(PREFIX)}
    assert own <= FUNCTION_SPECIFIC, (
        f"{logical} sets {sorted(own - FUNCTION_SPECIFIC)}, which no setting reads"
    )


def test_every_function_specific_setting_is_given_to_some_function() -> None:
    given = set().union(*(_own(logical).keys() for logical in FUNCTIONS))
    assert given >= FUNCTION_SPECIFIC


def _reads() -> tuple[set[str], set[str]]:
    """Settings the library reads: as attributes of the settings, and through value()/require()."""
    attributes: set[str] = set()
    named: set[str] = set()
    methods = {"value", "require", "archive_buckets"}
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            receiver = node.value
            is_settings = (isinstance(receiver, ast.Name) and receiver.id == "settings") or (
                isinstance(receiver, ast.Call) and ast.unparse(receiver.func) == "get_settings"
            )
            if is_settings and node.attr not in methods:
                attributes.add(node.attr)
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("value", "require")
                and ast.unparse(node.func.value) in ("settings", "get_settings()")
            ):
                named.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return attributes, named | {task.machine_setting for task in TASKS.values()}


def test_the_code_reads_stack_wide_settings_as_fields_and_the_others_only_through_value() -> None:
    """A function-specific setting read as a plain field would be None where it was not given."""
    attributes, named = _reads()
    stack_wide = set(Settings.stack_wide())
    assert attributes, "no settings read found: the scan is broken"
    assert attributes <= stack_wide, f"read as fields but not stack-wide: {sorted(attributes - stack_wide)}"
    assert {variable(n) for n in named} <= FUNCTION_SPECIFIC
    assert {variable(n) for n in named} == FUNCTION_SPECIFIC, "a function-specific setting nothing reads"


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_on_lambda_each_function_starts_with_exactly_its_template_environment(logical: str) -> None:
    result = _init(logical)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["started", "True"]


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_on_lambda_a_function_without_its_variables_fails_init_naming_every_stack_wide_one(
    logical: str,
) -> None:
    assert _missing_named(_init(logical, drop=_sputnik_variables(logical))) == STACK_WIDE


SPECIFIC = sorted(
    (logical, name) for logical in FUNCTIONS for name in _own(logical) if name in FUNCTION_SPECIFIC
)


@pytest.mark.parametrize(("logical", "name"), SPECIFIC)
def test_on_lambda_a_function_without_one_of_its_own_variables_fails_init_naming_it(
    logical: str, name: str
) -> None:
    assert _missing_named(_init(logical, drop={name})) == {name}


def test_on_lambda_one_missing_stack_wide_variable_is_named_alone() -> None:
    assert _missing_named(_init("MetaFunction", drop={"SPUTNIK_SCENES_TABLE"})) == {"SPUTNIK_SCENES_TABLE"}


def test_the_settings_have_no_defaults_anywhere() -> None:
    """Off Lambda too: reading them without the variables fails, naming them all; none is invented."""
    with pytest.raises(MissingSettings) as raised:
        Settings.from_environment({})
    assert set(raised.value.variables) == STACK_WIDE
    environ = {name: f"value-of-{name}" for name in STACK_WIDE}
    settings = Settings.from_environment(environ)
    assert settings.users_table == "value-of-SPUTNIK_USERS_TABLE"
    assert settings.ingest_function is None
    with pytest.raises(MissingSettings, match="SPUTNIK_INGEST_FUNCTION"):
        settings.value("ingest_function")


def test_the_cli_with_no_stack_no_endpoint_and_no_variables_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", PREFIX))}
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-1"})
    result = WARM.run(["-m", "sputnik_tools.cli", "users", "list"], env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("sputnik: SPUTNIK_USERS_TABLE, ")
    assert "not set: name the deployed stack with --stack" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_deployed_stacks_settings_are_the_globals_resolved_against_its_resources(stack: Any) -> None:
    """Its tables and buckets, its parameters, and the archive's name made of its name, account and region."""
    resources = {
        logical: {"Type": "AWS::DynamoDB::Table", "Properties": _table(f"deployed2-{logical.lower()}")}
        for logical in ("UsersTable", "ProjectsTable", "ProcsTable")
    }
    resources["ProductsBucket"] = {
        "Type": "AWS::S3::Bucket",
        "Properties": {"BucketName": "deployed2-products"},
    }
    body = {
        "Parameters": {"ExternalArchiveBucket": {"Type": "String", "Default": "sentinel-cogs"}},
        "Resources": resources,
    }
    cloudformation = stack.client("cloudformation")
    cloudformation.create_stack(
        StackName="deployed2",
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": "ExternalArchiveBucket", "ParameterValue": "another-archive"}],
    )
    found = stack_environment(TEMPLATE_MODEL, cloudformation, "deployed2")
    assert found == {
        "SPUTNIK_USERS_TABLE": "deployed2-userstable",
        "SPUTNIK_PROJECTS_TABLE": "deployed2-projectstable",
        "SPUTNIK_PROCS_TABLE": "deployed2-procstable",
        "SPUTNIK_PRODUCTS_BUCKET": "deployed2-products",
        "SPUTNIK_EXTERNAL_ARCHIVE_BUCKET": "another-archive",
        "SPUTNIK_ARCHIVE_BUCKET": "deployed2-archive-123456789012-us-east-1",
    }, "a variable whose resource the stack lacks must be left out, not given a local name"


def _table(name: str) -> dict[str, Any]:
    """The properties of a minimal DynamoDB table."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
    }


def test_the_local_stack_names_come_from_the_template(stack: Any) -> None:
    """What the tests run against: each setting is the name the local stack gave that resource."""
    from sputnik.settings import get_settings

    settings = get_settings()
    assert settings.users_table == stack.template.physical_name("UsersTable")
    assert settings.products_bucket == stack.template.physical_name("ProductsBucket")
    assert settings.value("ingest_function") == stack.template.physical_name("IngestFunction")
    assert settings.value("s2_load_meta_machine") == stack.template.arn("S2LoadMetaMachine")
