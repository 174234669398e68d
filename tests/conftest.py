"""Shared test fixtures: the local stack (moto + HTTP front), users, and the real public data."""

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import httpx
import pytest

from sputnik_tools.local_settings import use_local_settings
from tests.support.warm import WARM

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TEMPLATE = REPO / "template.yaml"
PASSWORD = "correct horse battery"
_logins = itertools.count()
# The modules that take longest, longest first: they start first. `make test` hands whole modules to
# its two test workers in collection order (--dist loadfile --no-loadscope-reorder), so a long module
# handed out last would keep one worker busy while the other idles (BENCHMARKS.md, Tests).
LONGEST_FIRST = (
    "test_contract_fuzz.py",
    "test_viewer.py",
    "test_events.py",
    "test_backfill.py",
    "test_projects_api.py",
    "test_faults.py",
    "test_settings.py",
    "test_cog.py",
    "test_cli.py",
)
# The library has no default names: tests, and the processes they start, see the local stack's.
use_local_settings(TEMPLATE)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of real Sentinel-2 data kept in the repository (tests/fixtures)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"real fixtures missing: expected {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    """The local stack built from template.yaml, one per test process."""
    from sputnik_tools.local.ports import free_port
    from sputnik_tools.local.stack import LocalStack

    with LocalStack(TEMPLATE, aws_port=free_port()) as running:
        yield running


@pytest.fixture(scope="session")
def front(stack: Any) -> Iterator[Any]:
    """The local HTTP front of the stack, on a free port."""
    from sputnik_tools.local.front import Front
    from sputnik_tools.local.ports import free_port

    served = Front(stack, port=free_port()).start()
    yield served
    served.stop()


def new_user(prefix: str = "user") -> tuple[str, str]:
    """Create a fresh login in the stack and return (login, password)."""
    from sputnik import auth

    login = f"{prefix}{os.getpid()}-{next(_logins)}"
    auth.add_user(login, PASSWORD)
    return login, PASSWORD


def run_cli(
    stack: Any, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `sputnik` command in a fresh process pointed at the stack, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPUTNIK_"))}
    env["AWS_ENDPOINT_URL"] = stack.endpoint
    env.update(env_extra or {})
    return WARM.run(["-m", "sputnik_tools.cli", *args], input=stdin, env=env, timeout=120)


def owner_of(login: str) -> str:
    """The immutable user id of a login: what owns its projects and procs."""
    from sputnik import auth

    return str(auth.get_user(login).user_id)


@pytest.fixture
def user(stack: Any) -> tuple[str, str]:
    """A fresh login with a password."""
    return new_user()


@pytest.fixture
def api(front: Any, user: tuple[str, str]) -> Iterator[httpx.Client]:
    """An HTTP client for the local API, logged in as a fresh user."""
    with httpx.Client(base_url=front.url, auth=user, timeout=60) as client:
        yield client


@pytest.fixture
def anon(front: Any) -> Iterator[httpx.Client]:
    """An HTTP client for the local API without credentials."""
    with httpx.Client(base_url=front.url, timeout=60) as client:
        yield client


class DynamoCalls:
    """Every DynamoDB operation the code under test makes, by name."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.tables: list[str] = []

    def count(self, op: str, table: str | None = None) -> int:
        """How many times one operation was called (on one table, if named)."""
        return sum(o == op and table in (None, t) for o, t in zip(self.ops, self.tables, strict=True))


@pytest.fixture(autouse=True)
def dynamo_calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoCalls]:
    """Record DynamoDB calls and fail any test whose code Scans (unless marked `allow_scan`)."""
    calls = DynamoCalls()
    original = botocore.client.BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.ops.append(operation_name)
            calls.tables.append(str(api_params.get("TableName", "")))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    yield calls
    if "Scan" in calls.ops and request.node.get_closest_marker("allow_scan") is None:
        pytest.fail("a DynamoDB Scan was made; request paths must Query or GetItem")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest modules first, the others after them in their usual order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers."""
    config.addinivalue_line("markers", "allow_scan: the test exercises an admin command that may Scan")
