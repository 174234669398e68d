"""What `sam build` packs agrees with what the code imports and with pyproject.toml."""

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from sputnik.local.template import Template
from tests.conftest import REPO, TEMPLATE

LAYER = REPO / "layers" / "sputnik"


def _names(lines: list[str]) -> set[str]:
    """Distribution names of requirement lines, normalised."""
    found = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found.add(
                re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")
            )
    return found


def test_layer_requirements_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    light = _names((LAYER / "requirements.txt").read_text().splitlines())
    geo = _names((LAYER / "requirements-geo.txt").read_text().splitlines())
    # boto3 comes with Lambda's runtime; rio-cogeo only writes demo archives, never in Lambda.
    assert light == _names(project["dependencies"]) - {"boto3"}
    assert geo == _names(project["optional-dependencies"]["geo"]) - {"rio-cogeo"}


@pytest.mark.parametrize("logical", sorted(Template.load(TEMPLATE).of_type("AWS::Serverless::Function")))
def test_only_functions_with_the_geo_layer_import_the_imagery_stack(logical: str) -> None:
    props = Template.load(TEMPLATE).resources[logical]["Properties"]
    layers = [layer["Ref"] for layer in props["Layers"]]
    assert len(layers) == 1, "a function attaches one layer: GeoLayer already holds SputnikLayer's packages"
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('fn', '{props['CodeUri']}app.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('rasterio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(layers == ["GeoLayer"])


# ---------------------------------------------------------------- a clone stands alone
def _tracked_files() -> list[str]:
    """Files git tracks in the repository (what a clone gets)."""
    return subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_nothing_in_the_project_reads_a_folder_beside_the_repository() -> None:
    # Built from parts so that this file does not match itself.
    beside = re.compile(r"\.\./" + "shared|" + r"parents?\[\d\]\s*/\s*['\"]" + "shared")
    offenders = []
    for name in _tracked_files():
        path = REPO / name
        text = (
            path.suffix in (".py", ".md", ".toml", ".yaml", ".yml", ".json", ".txt")
            or path.name == "Makefile"
        )
        if text and beside.search(path.read_text(errors="replace")):
            offenders.append(name)
    assert offenders == []


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_data_tests_and_events_read_is_tracked_by_git() -> None:
    tracked = set(_tracked_files())
    for folder in ("tests/fixtures", "events"):
        files = [str(p.relative_to(REPO)) for p in (REPO / folder).rglob("*") if p.is_file()]
        assert files, folder
        assert sorted(set(files) - tracked) == [], f"{folder} has files a clone would not get"


def _imports(path: Path) -> set[str]:
    """Top-level modules a source file imports, lazily imported ones included; not stdlib, not sputnik."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"sputnik"}


def _declared(extras: list[str]) -> set[str]:
    """Distributions pyproject declares for the base install and the given extras (nested ones followed)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names, todo, seen = _names(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in project["optional-dependencies"][extra]:
            nested = re.fullmatch(r"sputnik\[([\w,]+)\]", line.strip())
            if nested:
                todo.extend(nested.group(1).split(","))
            else:
                names |= _names([line])
    return names


@cache
def _providers() -> dict[str, list[str]]:
    """Top-level module -> installed distributions (a scan of every installed package: done once)."""
    return dict(importlib.metadata.packages_distributions())


def _distributions(module: str) -> set[str]:
    """Normalised names of the installed distributions that provide a top-level module."""
    provided = _providers().get(module, [])
    assert provided, f"{module} is imported but no installed distribution provides it"
    return _names(provided)


def _installed_with(declared: set[str]) -> set[str]:
    """The declared distributions and everything pip installs with them (their requirements, recursively)."""
    found, todo = set(), list(declared)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": "server"}):
                todo.extend(_names([requirement.name]))
    return found


@pytest.mark.parametrize(
    ("entry", "folder", "extras"),
    [
        ("the library and the Lambda functions", "layers/sputnik/sputnik", ["geo"]),
        ("sputnik local", "layers/sputnik/sputnik/local", ["local"]),
    ],
)
def test_every_import_of_an_entry_point_is_declared_in_its_extras(
    entry: str, folder: str, extras: list[str]
) -> None:
    installed = _installed_with(_declared(extras))
    files = sorted((REPO / folder).rglob("*.py"))
    if folder.endswith("sputnik/sputnik"):
        files = [f for f in files if "local" not in f.relative_to(REPO / folder).parts]
        files += sorted((REPO / "functions").glob("*/app.py"))
    missing = {
        f"{module} ({path.relative_to(REPO)})"
        for path in files
        for module in _imports(path)
        if not _distributions(module) & installed
    }
    assert missing == set(), f"{entry} imports what pyproject does not declare for it"


def test_the_local_extra_declares_what_sputnik_local_imports_itself() -> None:
    direct = set().union(*(_imports(p) for p in (REPO / "layers/sputnik/sputnik/local").rglob("*.py")))
    assert direct, "sputnik local imports third-party modules"
    declared = _declared(["local"])
    assert {module for module in direct if not _distributions(module) & declared} == set()
    assert {"moto", "pyyaml", "werkzeug"} <= declared - _declared([]), "only `sputnik local` needs them"
    assert _declared(["local"]) <= _declared(["dev"])
