"""The combined OpenAPI document: every HttpApi function's own app, merged into one document.

The Root function serves it at /openapi.json but must not import the other functions' libraries, so the
document is made here, at build time (`make bundle`) and when the local stack starts, and shipped as a file.
"""

import argparse
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sputnik import __version__
from sputnik_tools.local_settings import use_local_settings
from sputnik_tools.template import Template

DESCRIPTION = (
    "Sentinel-2 imagery projects: scenes matched to a project's border and dates, processing tasks "
    "and map tiles. Every route needs HTTP Basic credentials."
)


class OpenApiConflict(ValueError):
    """Two functions document the same route, or different models under one name."""


def function_apps(template: Template) -> dict[str, FastAPI]:
    """The FastAPI app of every function that serves HttpApi routes, by logical id, in template order."""
    served = {route.function for route in template.routes()}
    glob = (template.data.get("Globals") or {}).get("Function") or {}
    apps = {}
    for logical, res in template.of_type("AWS::Serverless::Function").items():
        if logical not in served:
            continue
        props = res.get("Properties") or {}
        module_name = str(props.get("Handler", glob.get("Handler", "app.handler"))).rsplit(".", 1)[0]
        path = template.root / str(props.get("CodeUri", glob.get("CodeUri", "."))) / f"{module_name}.py"
        spec = importlib.util.spec_from_file_location(f"sputnik_functions.{logical}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        apps[logical] = module.app
    return apps


def combine(apps: Mapping[str, FastAPI]) -> dict[str, Any]:
    """One OpenAPI document with every route and model of the apps; a clash is an error, not a merge."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {}
    version = "3.1.0"
    for name, app in apps.items():
        doc = app.openapi()
        version = doc["openapi"]
        for path, operations in doc.get("paths", {}).items():
            merged = paths.setdefault(path, {})
            for method, operation in operations.items():
                if method in merged:
                    raise OpenApiConflict(f"{method.upper()} {path} is documented by {name} and another app")
                merged[method] = operation
        for kind, entries in doc.get("components", {}).items():
            kept = components.setdefault(kind, {})
            for key, value in entries.items():
                if kept.setdefault(key, value) != value:
                    raise OpenApiConflict(f"{name} defines {kind} {key!r} unlike another app")
    return {
        "openapi": version,
        "info": {"title": "sputnik", "version": __version__, "description": DESCRIPTION},
        # Relative to the document's own URL, so "Try it out" keeps an API Gateway stage prefix.
        "servers": [{"url": "."}],
        "paths": paths,
        "components": {kind: dict(sorted(entries.items())) for kind, entries in components.items()},
    }


def combined_document(template_path: Path) -> dict[str, Any]:
    """The combined document of a template's functions."""
    return combine(function_apps(Template.load(template_path)))


def write_document(template_path: Path, out: Path) -> Path:
    """Write the combined document atomically (test processes may write it side by side)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(combined_document(template_path), indent=1) + "\n"
    partial = out.with_name(f".{out.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m sputnik_tools.openapi TEMPLATE OUT`: write the combined document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("template", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    # Building the apps reads the settings (nothing is called): the local stack's names serve.
    use_local_settings(args.template)
    print(write_document(args.template, args.out))


if __name__ == "__main__":
    main()
