"""The template as CloudFormation receives it: the SAM transform offline, and its dependency graph.

`python -m infra.transform template.yaml OUT.json` writes what `sam package` hands to CloudFormation
(local code paths become s3:// URIs first), so cfn-lint can check the template CloudFormation sees.
"""

import graphlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from sputnik_tools.template import load_template

REGION = "us-east-1"
# Properties that `sam package` replaces with the S3 location it uploaded the local path to.
_PACKAGED = ("CodeUri", "ContentUri", "DefinitionUri")
_SUB_NAME = re.compile(r"\$\{(?!!)([^}]+)\}")


class _OfflinePolicies:
    """Managed-policy loader that never calls IAM: the template names no managed policy by name."""

    def load(self) -> dict[str, str]:
        """No managed-policy names to resolve."""
        return {}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of the template with local paths replaced by s3:// URIs, as `sam package` leaves it."""
    out = json.loads(json.dumps(template))
    for logical, resource in out["Resources"].items():
        props = resource.get("Properties") or {}
        for key in _PACKAGED:
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://packaged-artifacts/{logical}/{key}"
    return out


def transform(template: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the SAM transform offline and return the plain CloudFormation template."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.transform import transform as sam_transform

    ArnGenerator.BOTO_SESSION_REGION_NAME = os.environ["AWS_DEFAULT_REGION"]
    result: dict[str, Any] = sam_transform(packaged(template), parameters or {}, _OfflinePolicies())
    return result


def references(value: Any) -> set[str]:
    """Every logical id or parameter a value refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner.split(".", 1)[0] if isinstance(inner, str) else inner[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                names = {name.split(".", 1)[0] for name in _SUB_NAME.findall(text)}
                found |= (names - set(variables)) | references(variables)
            else:
                found |= references(inner)
    return found


def dependencies(template: dict[str, Any]) -> dict[str, set[str]]:
    """Each resource's resources: what CloudFormation must create first (Ref, GetAtt, Sub, DependsOn)."""
    resources = template["Resources"]
    graph: dict[str, set[str]] = {}
    for logical, resource in resources.items():
        depends = resource.get("DependsOn") or []
        needs = references({k: v for k, v in resource.items() if k != "DependsOn"})
        needs |= {depends} if isinstance(depends, str) else set(depends)
        graph[logical] = {name for name in needs if name in resources}
    return graph


def dependency_cycle(template: dict[str, Any]) -> list[str] | None:
    """A cycle of the dependency graph (first and last element equal), or None when it has none."""
    try:
        graphlib.TopologicalSorter(dependencies(template)).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def main(argv: list[str]) -> int:
    """Transform TEMPLATE into OUT; fail with the cycle if CloudFormation would find one."""
    source, out = Path(argv[0]), Path(argv[1])
    transformed = transform(load_template(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transformed, indent=1))
    cycle = dependency_cycle(transformed)
    if cycle:
        print(f"{source}: circular dependency after the SAM transform: {' -> '.join(cycle)}", file=sys.stderr)
        return 1
    print(f"{out}: {len(transformed['Resources'])} resources, no dependency cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
