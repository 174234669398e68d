"""Read template.yaml (the one source of truth) and resolve what the local stack needs from it."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SHORT_TAGS = {"Ref": "Ref", "Condition": "Condition"}


# libyaml's parser when PyYAML has it (its wheels do): the template parses in 20 ms instead of 150,
# and every `sputnik` command parses it up to three times. The constructors are Python's either way.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) into long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """Map `!Tag value` to `{"Fn::Tag": value}` (or `{"Ref": value}`)."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    key = _SHORT_TAGS.get(suffix, f"Fn::{suffix}")
    return {key: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template."""
    with path.open() as f:
        data = yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


@dataclass(frozen=True)
class Route:
    """One HttpApi route of the template: METHOD /path with its function."""

    method: str
    path: str
    function: str
    # The integration timeout (HttpApi event `TimeoutInMillis`; an HTTP API allows 30 s at most).
    timeout_ms: int = 30_000

    @property
    def route_key(self) -> str:
        """API Gateway's route key, such as `GET /project/info`."""
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Return the path parameters if this route takes the request, else None."""
        if self.method not in ("ANY", method):
            return None
        m = self._regex.fullmatch(path)
        return None if m is None else dict(m.groupdict())

    @property
    def _regex(self) -> re.Pattern[str]:
        """The route path as a regex: `{name}` is one segment, `{name+}` the rest of the path."""
        out = []
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                out.append(f"(?P<{part[1:-2]}>.+)")
            elif part.startswith("{"):
                out.append(f"(?P<{part[1:-1]}>[^/]+)")
            else:
                out.append(re.escape(part))
        return re.compile("".join(out))

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: API Gateway prefers exact paths, then the most literal, and greedy paths last."""
        greedy = 1 if "+}" in self.path else 0
        literal = len(re.sub(r"\{[^}]+\}", "", self.path))
        return (greedy, -literal, 0 if self.method != "ANY" else 1)


@dataclass
class Template:
    """The parts of template.yaml the local stack stands up."""

    path: Path
    data: dict[str, Any]
    stack_name: str = "sputnik"
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, stack_name: str = "sputnik") -> "Template":
        """Load a template file."""
        return cls(path=path, data=load_template(path), stack_name=stack_name)

    @property
    def root(self) -> Path:
        """Folder that CodeUri and DefinitionUri paths are relative to."""
        return self.path.parent

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """All resources by logical id."""
        return dict(self.data["Resources"])

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        """Resources of the given types."""
        return {k: v for k, v in self.resources.items() if v.get("Type") in types}

    def physical_name(self, logical_id: str) -> str:
        """The name the local stack gives a resource (`!Ref` of a table, bucket, function)."""
        res = self.resources[logical_id]
        props = res.get("Properties") or {}
        for key in ("TableName", "BucketName", "FunctionName", "Name"):
            if key in props:
                return str(self.resolve(props[key]))
        return (
            f"{self.stack_name}-{logical_id}".lower()
            if "Bucket" in res["Type"]
            else f"{self.stack_name}-{logical_id}"
        )

    def resolve(self, value: Any, extra: dict[str, str] | None = None) -> Any:
        """Resolve Ref, Sub, GetAtt (Arn), Join, Split and Select against local names; leave the rest."""
        if isinstance(value, list):
            return [self.resolve(v, extra) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self._ref(str(value["Ref"]), extra)
        if "Fn::Sub" in value:
            text, variables = (
                (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            )
            names = {k: str(self.resolve(v, extra)) for k, v in variables.items()}
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: names.get(m.group(1)) or self._sub_name(m.group(1), extra),
                text,
            )
        if "Fn::GetAtt" in value:
            logical, attr = value["Fn::GetAtt"]
            return self.arn(logical) if attr == "Arn" else self.physical_name(logical)
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self.resolve(p, extra)) for p in parts)
        if "Fn::Split" in value:
            sep, text = value["Fn::Split"]
            return str(self.resolve(text, extra)).split(sep)
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return self.resolve(items, extra)[int(self.resolve(index, extra))]
        return {k: self.resolve(v, extra) for k, v in value.items()}

    def _sub_name(self, name: str, extra: dict[str, str] | None) -> str:
        """Resolve one `${Name}` or `${Name.Arn}` inside Fn::Sub."""
        if "." in name:
            logical, _ = name.split(".", 1)
            return self.arn(logical)
        return str(self._ref(name, extra))

    def _ref(self, name: str, extra: dict[str, str] | None) -> str:
        """Resolve a Ref to a parameter, pseudo parameter or resource."""
        pseudo = {
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": self.stack_name,
        }
        if extra and name in extra:
            return extra[name]
        if name in pseudo:
            return pseudo[name]
        params = self.data.get("Parameters") or {}
        if name in params:
            return self.parameters.get(name, str(params[name].get("Default", "")))
        if name in self.resources:
            if self.resources[name]["Type"] == "AWS::Serverless::StateMachine":
                return self.arn(name)
            return self.physical_name(name)
        raise KeyError(f"template has no resource or parameter {name!r}")

    def arn(self, logical_id: str) -> str:
        """The ARN a resource has in the local stack."""
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:us-east-1:123456789012:{name}"
        return f"arn:aws:local:us-east-1:123456789012:{name}"

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Environment variables of one function: Globals merged with its own."""
        glob = ((self.data.get("Globals") or {}).get("Function") or {}).get("Environment", {})
        own = (self.resources[logical_id].get("Properties") or {}).get("Environment", {})
        merged = {**(glob.get("Variables") or {}), **(own.get("Variables") or {})}
        return {k: str(self.resolve(v)) for k, v in merged.items()}

    def routes(self) -> list[Route]:
        """Every HttpApi route, most specific first (the order API Gateway matches in)."""
        found = []
        for logical, res in self.of_type("AWS::Serverless::Function").items():
            for event in ((res.get("Properties") or {}).get("Events") or {}).values():
                if event.get("Type") == "HttpApi":
                    props = event.get("Properties") or {}
                    method, timeout = str(props.get("Method", "ANY")).upper(), props.get("TimeoutInMillis")
                    found.append(Route(method, props["Path"], logical, int(timeout or 30_000)))
        return sorted(found, key=lambda r: r.specificity)
