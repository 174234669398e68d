"""What `sam build` packs agrees with what the code imports and with pyproject.toml."""

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sputnik import auth
from sputnik_tools.template import Template
from tests.conftest import REPO, TEMPLATE

LAYER = REPO / "layers" / "sputnik"
LOCKS = {"SputnikLayer": "base.txt", "GeometryLayer": "geometry.txt", "GeoLayer": "imagery.txt"}
EXTRAS = {"SputnikLayer": [], "GeometryLayer": ["geometry"], "GeoLayer": ["geometry", "imagery"]}
# What a function of each layer must never import: its layer does not have it.
NOT_IN = {
    "SputnikLayer": {"numpy", "shapely", "pyproj", "rasterio", "rio_tiler", "titiler", "morecantile"},
    "GeometryLayer": {"rasterio", "rio_tiler", "titiler", "morecantile"},
    "GeoLayer": set(),
}
# What a function's layer has but its cold start leaves to the routes that use it.
LAZY = {"ProjectsFunction": {"numpy", "shapely", "pyproj", "antimeridian"}, "TasksFunction": {"boto3"}}
FUNCTIONS = sorted(Template.load(TEMPLATE).of_type("AWS::Serverless::Function"))


def _names(lines: list[str]) -> set[str]:
    """Normalised distribution names of requirement lines (comments and blanks skipped)."""
    found = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found.add(canonicalize_name(Requirement(line).name))
    return found


def _pins(lock: str) -> dict[str, str]:
    """Distribution name → pinned version of a lock file."""
    pins = {}
    for line in (LAYER / "lock" / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _dropped(layer: str) -> set[str]:
    """Modules that the layers' Makefile drops from a layer (its DROP list), as dotted names."""
    makefile = (LAYER / "Makefile").read_text()
    target = re.search(rf"^build-{layer}:\n((?:\t.*\n)+)", makefile, re.M)
    assert target, f"layers/sputnik/Makefile has no build-{layer} target"
    drop = re.search(r'DROP="([^"]*)"', target.group(1))
    return {path.replace("/", ".") for path in drop.group(1).split()} if drop else set()


@pytest.mark.parametrize("layer", sorted(LOCKS))
def test_each_lock_pins_what_pyproject_asks_for_its_layer(layer: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS[layer]:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _pins(LOCKS[layer])
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{name} is in pyproject.toml but not pinned in lock/{LOCKS[layer]}: run make lock"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"lock/{LOCKS[layer]} pins {name}=={pins[name]}, outside pyproject's {requirement}: run make lock"
        )


def test_the_locks_agree_and_each_layer_holds_the_one_before() -> None:
    base, geometry, imagery = _pins("base.txt"), _pins("geometry.txt"), _pins("imagery.txt")
    assert base.items() <= geometry.items() <= imagery.items()
    assert {"numpy", "shapely", "pyproj"} <= geometry.keys() - base.keys()
    assert {"rasterio", "rio-tiler", "titiler-core"} <= imagery.keys() - geometry.keys()


def test_the_runtimes_sdk_stand_in_is_the_oldest_pyproject_accepts_and_left_out_of_every_layer() -> None:
    """lock/runtime.txt: what the layers leave to Lambda's runtime, tested at pyproject's floor."""
    from packaging.version import Version

    runtime = _pins("runtime.txt")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floors = {
        canonicalize_name(r.name): min(Version(s.version) for s in r.specifier if s.operator == ">=")
        for r in map(Requirement, project["dependencies"] + project["optional-dependencies"]["local"])
        if canonicalize_name(r.name) in ("boto3", "botocore")
    }
    assert floors.keys() == {"boto3", "botocore"}
    for name, floor in floors.items():
        assert Version(runtime[name]) == floor, f"lock/runtime.txt pins {name} {runtime[name]}, not {floor}"
    # The rest of the SDK: every package the layers' Makefile leaves out, as the runtime has it.
    makefile = (LAYER / "Makefile").read_text()
    assert "RUNTIME := $(shell sed -n 's/==.*//p' lock/runtime.txt" in makefile
    assert {"boto3", "botocore", "s3transfer", "urllib3"} <= runtime.keys()
    # The newest pins agree with the runtime's on everything but the SDK's own releases.
    base = _pins("base.txt")
    assert {k: v for k, v in runtime.items() if base[k] != v}.keys() == {"boto3", "botocore", "s3transfer"}


def test_the_suite_runs_on_one_of_the_two_sdks_the_functions_may_meet() -> None:
    """The runtime's stand-in (`make pytest`) or the newest pins (`make pytest-pinned-sdk`)."""
    import boto3
    import botocore

    runs = {(_pins(lock)["boto3"], _pins(lock)["botocore"]) for lock in ("base.txt", "runtime.txt")}
    assert (boto3.__version__, botocore.__version__) in runs


def test_every_function_attaches_exactly_one_of_the_layers() -> None:
    template = Template.load(TEMPLATE)
    for logical in FUNCTIONS:
        layers = [layer["Ref"] for layer in template.resources[logical]["Properties"]["Layers"]]
        assert len(layers) == 1 and layers[0] in LOCKS, f"{logical}: {layers}"
    for layer in LOCKS:
        assert template.resources[layer]["Metadata"]["BuildMethod"] == "makefile"
        assert f"build-{layer}:" in (LAYER / "Makefile").read_text()


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_a_function_never_imports_what_its_layer_leaves_out(logical: str) -> None:
    """The lazy-import rule: loading a handler (import and app build) stays inside its layer."""
    props = Template.load(TEMPLATE).resources[logical]["Properties"]
    (layer,) = [ref["Ref"] for ref in props["Layers"]]
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('fn', '{props['CodeUri']}app.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "assert callable(m.handler);"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "sputnik" in loaded
    forbidden = NOT_IN[layer] | _dropped(layer)
    left_out = NOT_IN[layer] | LAZY.get(logical, set())
    found = {m.split(".")[0] for m in loaded if m.split(".")[0] in left_out} | (loaded & forbidden)
    assert not found, f"{logical} ({layer}) imports {sorted(found)}: import them where they are used"


def test_light_functions_exist_and_geo_functions_read_pixels() -> None:
    """The rule above is tested on real cases: meta has the light layer, cog and rgb the imagery one."""
    template = Template.load(TEMPLATE)
    layer_of = {f: template.resources[f]["Properties"]["Layers"][0]["Ref"] for f in FUNCTIONS}
    assert layer_of["MetaFunction"] == "SputnikLayer"
    assert layer_of["ProjectsFunction"] == layer_of["IngestFunction"] == "GeometryLayer"
    assert layer_of["CogFunction"] == layer_of["RgbFunction"] == "GeoLayer"


def test_the_dummy_hash_has_the_hashers_parameters() -> None:
    """auth keeps a precomputed hash (hashing at import slows cold starts): it must cost a real verify."""
    assert not auth.HASHER.check_needs_rehash(auth._DUMMY_HASH)
    assert not auth._verify(auth._DUMMY_HASH, "anything")


# ---------------------------------------------------------------- slim.py, on a small layer of its own


def _slim() -> ModuleType:
    """layers/sputnik/slim.py, the layers' slimming step."""
    spec = importlib.util.spec_from_file_location("slim", LAYER / "slim.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _run_isolated(root: Path, code: str) -> str:
    """Run code in an interpreter that sees only root (and the standard library), writing no bytecode."""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); {code}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_slim_ships_bytecode_only_and_the_library_keeps_its_sources(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "dep/__init__.py": "from dep.core import answer\n",
            "dep/core.py": '"""A docstring."""\ndef answer():\n    return 42\n',
            "dep/tests/test_core.py": "assert False\n",
            "dep/core.pyi": "def answer() -> int: ...\n",
            "dep/_speedups.c": "int x;\n",
            "single.py": "VALUE = 'single'\n",
            "sputnik/__init__.py": "",
            "sputnik/thing.py": "def boom():\n    raise ValueError('boom')\n",
            "dep-1.0.dist-info/METADATA": "Name: dep\nVersion: 1.0\n",
            "dep-1.0.dist-info/RECORD": "dep/__init__.py,,\n",
        },
    )
    slim = _slim()
    slim.drop_junk(tmp_path, slim.UNUSED)
    slim.compile_bytecode(tmp_path)

    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert {"dep/__init__.pyc", "dep/core.pyc", "single.pyc", "dep-1.0.dist-info/METADATA"} <= left
    assert (
        not {"dep/core.py", "dep/core.pyi", "dep/_speedups.c", "single.py", "dep-1.0.dist-info/RECORD"} & left
    )
    assert not any(name.startswith("dep/tests") for name in left)
    # The library keeps its sources, beside bytecode that is used without checking them.
    assert {"sputnik/thing.py", "sputnik/__pycache__/thing.cpython-312.pyc"} <= left
    (tmp_path / "sputnik" / "thing.py").write_text("def boom():\n    return 'edited source is not read'\n")
    code = (
        "import dep, single, sputnik.thing;"
        "print(dep.answer(), single.VALUE);"
        "import traceback\ntry: sputnik.thing.boom()\nexcept ValueError: print('raised from bytecode')"
    )
    assert _run_isolated(tmp_path, code).splitlines() == ["42 single", "raised from bytecode"]


def test_slim_drops_docstrings_only_of_the_scientific_libraries(tmp_path: Path) -> None:
    slim = _slim()
    module = 'def f():\n    """Doc."""\n    assert False, "asserts go with docstrings"\n'
    _write(tmp_path, {f"{name}/__init__.py": module for name in ("numpy", "fastapi")})
    slim.compile_bytecode(tmp_path)
    code = "import numpy, fastapi; print(numpy.f.__doc__, fastapi.f.__doc__); numpy.f()"
    assert _run_isolated(tmp_path, code) == "None Doc."


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


def _top_level_imports(path: Path) -> set[str]:
    """Top-level modules a source file imports, lazily imported ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _imports(path: Path) -> set[str]:
    """Third-party modules a source file imports: not stdlib, not sputnik's own packages."""
    return _top_level_imports(path) - set(sys.stdlib_module_names) - {"sputnik", "sputnik_tools"}


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
        ("the tools (sputnik local, the CLI, the archive generator)", "tools/sputnik_tools", ["local"]),
    ],
)
def test_every_import_of_an_entry_point_is_declared_in_its_extras(
    entry: str, folder: str, extras: list[str]
) -> None:
    installed = _installed_with(_declared(extras))
    files = sorted((REPO / folder).rglob("*.py"))
    if folder.endswith("sputnik/sputnik"):
        files += sorted((REPO / "functions").glob("*/app.py"))
    missing = {
        f"{module} ({path.relative_to(REPO)})"
        for path in files
        for module in _imports(path)
        if not _distributions(module) & installed
    }
    assert missing == set(), f"{entry} imports what pyproject does not declare for it"


def test_the_local_extra_declares_what_the_tools_import_themselves() -> None:
    direct = set().union(*(_imports(p) for p in (REPO / "tools/sputnik_tools").rglob("*.py")))
    assert direct, "the tools import third-party modules"
    declared = _declared(["local"])
    assert {module for module in direct if not _distributions(module) & declared} == set()
    assert {"moto", "pyyaml", "werkzeug"} <= declared - _declared([]), "only `sputnik local` needs them"
    assert _declared(["local"]) <= _declared(["dev"])


def test_the_library_and_the_functions_never_import_the_tools() -> None:
    """What ships to Lambda (the library, the functions) imports nothing of the development tools."""
    shipped = sorted((LAYER / "sputnik").rglob("*.py")) + sorted((REPO / "functions").glob("*/app.py"))
    assert len(shipped) > 30, "the library and the functions were found"
    offenders = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in shipped
        for name in _top_level_imports(path) & {"sputnik_tools", "tests", "bench", "infra"}
    }
    assert offenders == set(), "the shipped code imports development-only packages"
