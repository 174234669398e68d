"""The environment the library reads, as the local stack or a deployed stack gives it, from template.yaml.

The library has no defaults for its `SPUTNIK_*` settings (a wrong name would reach tables that do
not exist); what never ships provides them: the local stack's names for the CLI, tests and
benchmarks, a deployed stack's for `sputnik --stack`.
"""

import os
import re
from pathlib import Path
from typing import Any

from sputnik.settings import PREFIX
from sputnik_tools.template import Template

# The checkout's template when the tools run from one (`pip install -e`), else the working directory's.
_CHECKOUT = Path(__file__).resolve().parents[2] / "template.yaml"
TEMPLATE = _CHECKOUT if _CHECKOUT.is_file() else Path("template.yaml")


def local_environment(template: Template) -> dict[str, str]:
    """Every function's variables as the local stack names things; one process runs them all."""
    merged: dict[str, str] = {}
    for logical in template.of_type("AWS::Serverless::Function"):
        for key, value in template.function_environment(logical).items():
            if merged.get(key, value) != value:
                raise ValueError(f"{key} differs between functions; the local stack shares one process")
            merged[key] = value
    return merged


def local_region(template: Template) -> str:
    """The one region the local stack lives in."""
    return str(template.resolve({"Ref": "AWS::Region"}))


def use_local_settings(template_path: Path = TEMPLATE) -> None:
    """Give this process the local stack's `SPUTNIK_*` names and region where the environment has none."""
    template = Template.load(template_path)
    for key, value in local_environment(template).items():
        if key.startswith(PREFIX):
            os.environ.setdefault(key, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", local_region(template))
    _reread()


def stack_environment(template: Template, cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack-wide `SPUTNIK_*` variables of a deployed stack: Globals resolved against its resources.

    A variable is left out when something it refers to is not in the stack (e.g. a stack deployed
    from an older template), so that it is missing rather than wrong.
    """
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    region, account = stack["StackId"].split(":")[3:5]
    names = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": account,
        **{p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters") or []},
    }
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    names.update({r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources})
    glob = ((template.data.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    found = {}
    for key, value in (glob.get("Variables") or {}).items():
        if key.startswith(PREFIX) and _refers_to(value) <= names.keys():
            found[key] = str(template.resolve(value, names))
    return found


def use_stack_settings(template_path: Path, cloudformation: Any, stack_name: str) -> None:
    """Give this process a deployed stack's `SPUTNIK_*` names (they win over any already set)."""
    os.environ.update(stack_environment(Template.load(template_path), cloudformation, stack_name))
    _reread()


def _refers_to(value: Any) -> set[str]:
    """The parameters, resources and pseudo parameters a template value names (Ref and Sub)."""
    if isinstance(value, list):
        return set().union(*map(_refers_to, value))
    if not isinstance(value, dict):
        return set()
    if "Ref" in value:
        return {str(value["Ref"])}
    if "Fn::GetAtt" in value:
        return {str(value["Fn::GetAtt"][0])}
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text, variables = (sub, {}) if isinstance(sub, str) else sub
        named = set(re.findall(r"\$\{([^}.!]+)[^}]*\}", text)) - variables.keys()
        return named | _refers_to(list(variables.values()))
    return set().union(*map(_refers_to, value.values()))


def _reread() -> None:
    """Make the library read its settings again and point its tables at them."""
    from sputnik.models import bind_tables
    from sputnik.settings import get_settings

    get_settings.cache_clear()
    bind_tables()
