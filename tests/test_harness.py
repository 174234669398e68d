"""The test suite's own rules and helpers: modules share helpers through tests/support, never one another."""

import ast
import json
import os
from pathlib import Path

import pytest

from tests.support.warm import WARM

TESTS = Path(__file__).resolve().parent
MODULES = sorted(TESTS.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """The dotted names a Python file imports (from-imports by their module, plain imports whole)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "tests":  # `from tests import test_x`
                found.update(f"tests.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    """Whether a dotted module name is one of the test modules."""
    return name.startswith("tests.") and name.rsplit(".", 1)[1].startswith("test_")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_module_imports_a_test_module(path: Path) -> None:
    imported = sorted(name for name in imported_modules(path) if is_test_module(name))
    assert not imported, f"{path.name} imports test modules {imported}: move what it needs to tests/support"


def test_the_check_sees_a_test_module_import(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from tests.test_ingest import box\nfrom tests import test_demo\nimport tests.test_cli\n"
    )
    assert {name for name in imported_modules(sample) if is_test_module(name)} == {
        "tests.test_ingest",
        "tests.test_demo",
        "tests.test_cli",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_undoes_every_patch_at_once(path: Path) -> None:
    # Undoing the monkeypatch also removes conftest's autouse patches: the Scan guard and the call
    # counting (stop a fault with Fault.stop instead).
    undo = "monkeypatch" + ".undo()"
    assert undo not in path.read_text(), path.name


def test_the_modules_started_first_are_test_modules_of_the_suite() -> None:
    from tests.conftest import LONGEST_FIRST

    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert all((TESTS / name).is_file() and name.startswith("test_") for name in LONGEST_FIRST)


def test_a_warm_run_is_a_new_process_with_only_what_it_is_given(tmp_path: Path) -> None:
    """Its own environment, folder, arguments and stdin; none of sputnik imported; exit codes as Python's."""
    code = (
        "import json, os, sys; print(json.dumps({'sputnik': sorted(m for m in sys.modules if m.startswith("
        "('sputnik', 'pynamodb', 'aws_lambda_powertools'))), 'env': dict(os.environ), 'cwd': os.getcwd(), "
        "'argv': sys.argv, 'stdin': sys.stdin.read(), 'pid': os.getpid()})); sys.exit(3)"
    )
    env = {"PATH": os.environ["PATH"], "ONLY": "this"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    ran = WARM.run(["-c", code, "one"], env=env, cwd=tmp_path, input="given\n")
    assert ran.returncode == 3, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["sputnik"] == [] and seen["env"] == env and seen["cwd"] == str(tmp_path)
    assert seen["argv"] == ["-c", "one"] and seen["stdin"] == "given\n" and seen["pid"] != os.getpid()
    failed = WARM.run(["-c", "raise ValueError('named')"], env=env)
    assert failed.returncode == 1 and failed.stderr.strip().splitlines()[-1] == "ValueError: named"
    module = WARM.run(["-m", "sputnik_tools.cli", "--help"], env=env)
    assert module.returncode == 0 and module.stdout.startswith("usage: sputnik")
