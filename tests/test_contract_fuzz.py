"""Contract fuzzing: schemathesis over every function app's OpenAPI document, through the local front.

Generated from the template and the apps: each function that serves HttpApi routes is fuzzed over
the operations of its app that its routes let through, authenticated as a real user, with that
user's real ids (project, product, scene url, ...) substituted into most cases so that requests
reach the code behind the checks. Every response must be no 5xx, conform to its documented schema
and content type, and every 4xx must be JSON with a `detail`.
"""

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import InvalidSchema
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from sputnik_tools.local.front import Front
from sputnik_tools.local.stack import LocalStack
from tests.openapi_support import RealIds, all_operations, create_real_ids, openapi_or_skip

# Cases per operation and generation mode (valid, then invalid input).
EXAMPLES = 6
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Whether a 4xx is API Gateway's own answer (no route, payload quota), which speaks `message`.
GATEWAY_ANSWERS = ({"message": "Not Found"}, {"message": "Request Entity Too Large"})


@pytest.fixture(scope="module")
def real(stack: LocalStack, front: Front) -> RealIds:
    """A real user with a project, a product and a scene url."""
    return create_real_ids(stack, front.url, "fuzz")


def substitute(case: Any, real: RealIds) -> None:
    """Put the user's real ids in place of the generated ones, wherever a parameter names one."""
    for where in (case.path_parameters, case.query):
        if where:
            for name in where:
                if name in real.values:
                    where[name] = real.values[name]
    if isinstance(case.body, dict):
        for name in case.body:
            if name in real.values:
                case.body[name] = real.values[name]


def failure_summary(failure: BaseException) -> str:
    """One line for a failed check: its title and the first line of its message."""
    message = str(getattr(failure, "message", "") or failure).strip()
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return f"{getattr(failure, 'title', type(failure).__name__)}: {first}"


def reproducer(response: requests.Response) -> str:
    """A curl command line that sends the request again (as the fuzzing user), and what came back."""
    sent = response.request
    body = sent.body.decode(errors="replace") if isinstance(sent.body, bytes) else sent.body
    data = f" -H 'content-type: {sent.headers.get('content-type')}' -d '{body[:300]}'" if body else ""
    answer = f"{response.status_code} {response.text[:120]}"
    return f"curl -u LOGIN:PASSWORD -X {sent.method} '{sent.url}'{data} -> {answer}"


def problem_with_4xx(response: requests.Response) -> str | None:
    """Why a 4xx breaks the rule (JSON with a `detail`), or None."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} is not JSON: {response.text[:200]!r}"
    if body in GATEWAY_ANSWERS:
        return None
    if not isinstance(body, dict) or "detail" not in body:
        return f"{response.status_code} has no detail: {json.dumps(body)[:200]}"
    return None


# Operations that fail for a known defect of their function (strict: fixing one fails the test, so
# its entry goes), keyed by (function, METHOD, path).
KNOWN_DEFECTS: dict[tuple[str, str, str], str] = {
    ("CogFunction", "GET", "/cog/info"): (
        "rio-tiler's Info model gives `bounds` a tuple, an OpenAPI 3.1 `prefixItems` schema that "
        "schemathesis rejects as invalid, so no 200 can be validated (the document itself is valid 3.1)"
    ),
}
CASES: Counter[str] = Counter()


def operation_params() -> list[Any]:
    """One test per served operation, with its known defect as a strict xfail."""
    return [
        pytest.param(
            *key,
            id=f"{key[0]} {key[1]} {key[2]}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[key])] if key in KNOWN_DEFECTS else [],
        )
        for key in all_operations()
    ]


@pytest.fixture(scope="module", autouse=True)
def cases_run() -> Iterator[Counter[str]]:
    """Count the cases of the module and print the count at its end."""
    yield CASES
    print(f"\ncontract fuzzing: {CASES.total()} cases over {len(CASES)} operations")


@pytest.mark.parametrize(("function", "method", "path"), operation_params())
def test_operation_keeps_its_openapi_contract(
    function: str, method: str, path: str, stack: LocalStack, front: Front, real: RealIds
) -> None:
    operation = schemathesis.openapi.from_dict(openapi_or_skip(stack, function))[path][method]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()
    signed_in = {"Authorization": requests.auth._basic_auth_str(*real.auth)}

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), with_real_ids=st.integers(0, 3))
        def run(case: Any, with_real_ids: int) -> None:
            # One failure is enough to report; the rest of the budget is not spent.
            if failures:
                return
            # Schemathesis fills the Basic scheme with made-up credentials: sign in as the user.
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            if with_real_ids:
                substitute(case, real)
            request = case.as_transport_kwargs(base_url=front.url)
            request["headers"] = {**(request.get("headers") or {}), **signed_in}
            response = session.request(**request, timeout=60)
            CASES[operation.label] += 1
            statuses[response.status_code] += 1
            problems = []
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseExceptionGroup as group:  # schemathesis reports every failed check at once
                problems += [failure_summary(failure) for failure in group.exceptions]
            except InvalidSchema as exc:  # the document itself is wrong where it describes the answer
                problems.append(f"invalid response schema: {failure_summary(exc)}")
            if problem := problem_with_4xx(response):
                problems.append(problem)
            if problems:
                failures.append(f"{'; '.join(problems)}\n    {reproducer(response)}")

        run()

    assert not failures, f"statuses {dict(statuses)}: {failures[0]}"
