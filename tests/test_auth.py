"""HTTP Basic auth: argon2id, constant cost for unknown logins, lockout, the verified-credential cache."""

from typing import Any

import httpx
import pytest

from sputnik import auth
from sputnik.errors import InvalidInput, Unauthorized
from sputnik.models import UserModel
from sputnik_tools import users
from tests.conftest import PASSWORD, new_user, run_cli


def test_password_is_stored_as_argon2id(stack: Any, user: tuple[str, str]) -> None:
    stored = UserModel.get(user[0]).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_right_password_passes(stack: Any, user: tuple[str, str]) -> None:
    assert auth.authenticate(*user).login == user[0]


@pytest.mark.parametrize("login,password", [("nobody-here", PASSWORD), ("", ""), ("Bad Login!", "x")])
def test_unknown_or_malformed_login_is_refused(stack: Any, login: str, password: str) -> None:
    with pytest.raises(Unauthorized):
        auth.authenticate(login, password)


def _count_verifies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each argon2 verification."""
    seen: list[str] = []
    real = auth._verify

    def counting(password_hash: str, password: str) -> bool:
        seen.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(auth, "_verify", counting)
    return seen


def test_unknown_login_costs_one_verify_like_a_wrong_password(
    stack: Any, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch, dynamo_calls: Any
) -> None:
    seen = _count_verifies(monkeypatch)
    dynamo_calls.ops.clear()
    with pytest.raises(Unauthorized):
        auth.authenticate(user[0], "wrong password")
    known_ops = list(dynamo_calls.ops)
    dynamo_calls.ops.clear()
    with pytest.raises(Unauthorized):
        auth.authenticate(user[0] + "-missing", "wrong password")
    # Same number of argon2 verifies and the same DynamoDB calls: timing tells nothing.
    assert len(seen) == 2
    assert dynamo_calls.ops == known_ops


def test_lockout_refuses_the_right_password_and_looks_like_a_wrong_one(stack: Any, front: Any) -> None:
    login, password = new_user("locked")
    for _ in range(auth.MAX_FAILURES + 1):
        r = httpx.get(f"{front.url}/project/list", auth=(login, "wrong"))
        assert r.status_code == 401
    locked = httpx.get(f"{front.url}/project/list", auth=(login, password))
    assert locked.status_code == 401
    unknown = httpx.get(f"{front.url}/project/list", auth=(login + "-x", "wrong"))
    # The lock answers exactly as a wrong password or an unknown login would.
    assert locked.json() == unknown.json()
    assert locked.headers["www-authenticate"] == unknown.headers["www-authenticate"]


def test_failures_below_the_limit_do_not_lock(stack: Any) -> None:
    login, password = new_user("almost")
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(Unauthorized):
            auth.authenticate(login, "wrong")
    assert auth.authenticate(login, password).login == login
    # A success forgives earlier failures.
    with pytest.raises(Unauthorized):
        auth.authenticate(login, "wrong")
    assert auth.authenticate(login, password).login == login


def test_lock_expires(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    login, password = new_user("expiring")
    for _ in range(auth.MAX_FAILURES + 1):
        with pytest.raises(Unauthorized):
            auth.authenticate(login, "wrong")
    with pytest.raises(Unauthorized):
        auth.authenticate(login, password)
    now = auth.time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.LOCK_SECONDS + 1)
    assert auth.authenticate(login, password).login == login


def test_verified_credentials_are_cached_briefly(
    stack: Any, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.clear_cache()
    seen = _count_verifies(monkeypatch)
    auth.authenticate(*user)
    auth.authenticate(*user)
    assert len(seen) == 1
    now = auth.time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.CACHE_SECONDS + 1)
    auth.authenticate(*user)
    assert len(seen) == 2
    # A wrong password is never served from the cache.
    with pytest.raises(Unauthorized):
        auth.authenticate(user[0], user[1] + "x")


def test_removed_user_is_refused(stack: Any) -> None:
    login, password = new_user("removed")
    auth.authenticate(login, password)
    users.remove_user(login)
    with pytest.raises(Unauthorized):
        auth.authenticate(login, password)


@pytest.mark.parametrize(
    "login,password", [("ok-login", "short"), ("Upper", PASSWORD), ("!fail:x", PASSWORD)]
)
def test_add_user_rejects_bad_input(stack: Any, login: str, password: str) -> None:
    with pytest.raises(InvalidInput):
        auth.add_user(login, password)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/project/list"),
        ("GET", "/project/info?project_id=1"),
        ("POST", "/project/new"),
    ],
)
@pytest.mark.parametrize("credentials", [None, ("nobody", "x"), "wrong"])
def test_every_route_demands_basic_auth(
    front: Any, user: tuple[str, str], method: str, path: str, credentials: Any
) -> None:
    creds = (user[0], "wrong-password") if credentials == "wrong" else credentials
    r = httpx.request(method, front.url + path, auth=creds, json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert r.json() == {"detail": "authentication required" if credentials is None else "invalid credentials"}


def test_a_lock_wins_over_the_warm_credential_cache(stack: Any, front: Any) -> None:
    login, password = new_user("cached")
    # The right password once: this function now has it cached.
    assert httpx.get(f"{front.url}/project/list", auth=(login, password)).status_code == 200
    for _ in range(auth.MAX_FAILURES + 1):
        assert httpx.get(f"{front.url}/project/list", auth=(login, "wrong")).status_code == 401
    locked = httpx.get(f"{front.url}/project/list", auth=(login, password))
    assert locked.status_code == 401
    assert locked.json() == {"detail": "invalid credentials"}


def _list_from(stack: Any, source_ip: str, credentials: tuple[str, str]) -> int:
    """Call GET /project/list as API Gateway would for a client at `source_ip`; return the status."""
    import base64

    from sputnik_tools.local.front import build_event

    token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    event = build_event(
        "GET /project/list",
        "GET",
        "/project/list",
        {"host": "api.example:443", "authorization": f"Basic {token}"},
        b"",
    )
    event["requestContext"]["http"]["sourceIp"] = source_ip
    return int(stack.invoke(stack.function_for("ProjectsFunction"), event)["statusCode"])


def test_lockout_is_per_login_and_source_address(stack: Any) -> None:
    login, password = new_user("targeted")
    guesser, owner = "203.0.113.66", "198.51.100.7"
    for _ in range(auth.MAX_FAILURES + 1):
        assert _list_from(stack, guesser, (login, "guess")) == 401
    # The guesser's address is locked out of the login, even with the right password...
    assert _list_from(stack, guesser, (login, password)) == 401
    # ...while its owner, elsewhere, is not: guessing cannot lock anyone out.
    assert _list_from(stack, owner, (login, password)) == 200
    assert _list_from(stack, "2001:db8::1", (login, password)) == 200
    # And the owner's failures count on their own.
    for _ in range(auth.MAX_FAILURES):
        assert _list_from(stack, owner, (login, "typo")) == 401
    assert _list_from(stack, owner, (login, password)) == 200


def test_library_lockout_counts_each_source_apart(stack: Any) -> None:
    login, password = new_user("sources")
    for _ in range(auth.MAX_FAILURES + 1):
        with pytest.raises(Unauthorized):
            auth.authenticate(login, "wrong", "192.0.2.1")
    with pytest.raises(Unauthorized):
        auth.authenticate(login, password, "192.0.2.1")
    assert auth.authenticate(login, password, "192.0.2.2").login == login
    with pytest.raises(Unauthorized):  # from the cache now, and still locked for the first address
        auth.authenticate(login, password, "192.0.2.1")


def _calls(dependant: Any) -> set[Any]:
    """Every callable a route's dependency tree calls."""
    return {dependant.call} | {c for d in dependant.dependencies for c in _calls(d)}


def test_every_route_of_every_function_depends_on_the_caller() -> None:
    """Auth reaches routes however an app adds them (decorators, titiler's factory, prefixed routers)."""
    from fastapi.routing import APIRoute

    from sputnik.api.common import caller
    from sputnik_tools.openapi import function_apps
    from sputnik_tools.template import Template
    from tests.conftest import TEMPLATE

    apps = function_apps(Template.load(TEMPLATE))
    routes = {(name, r.path): r for name, app in apps.items() for r in app.routes if isinstance(r, APIRoute)}
    assert len(routes) > 40 and ("CogFunction", "/cog/tiles/{z}/{x}/{y}") in routes
    open_routes = sorted(key for key, route in routes.items() if caller not in _calls(route.dependant))
    assert open_routes == []


def _cached(login: str, password: str) -> bool:
    """Whether this process (the local stack's warm functions) holds the credential as verified."""
    return auth._cache_key(login, password) in auth._cache


def test_a_removed_user_is_refused_at_once_by_a_function_that_has_it_cached(stack: Any, front: Any) -> None:
    login, password = new_user("revoked")
    assert httpx.get(f"{front.url}/project/list", auth=(login, password)).status_code == 200
    assert _cached(login, password)
    # Removed from another process (the CLI), which cannot touch this process's cache.
    removed = run_cli(stack, "users", "remove", login)
    assert removed.returncode == 0, removed.stderr
    assert _cached(login, password)
    refused = httpx.get(f"{front.url}/project/list", auth=(login, password))
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid credentials"}


def test_a_changed_password_ends_the_old_one_at_once(stack: Any, front: Any) -> None:
    login, old = new_user("rotated")
    assert httpx.get(f"{front.url}/project/list", auth=(login, old)).status_code == 200
    assert _cached(login, old)
    changed = run_cli(stack, "users", "add", login, "--password-stdin", stdin="a new long password\n")
    assert changed.returncode == 0, changed.stderr
    assert "new password" in changed.stdout
    assert httpx.get(f"{front.url}/project/list", auth=(login, old)).status_code == 401
    assert httpx.get(f"{front.url}/project/list", auth=(login, "a new long password")).status_code == 200


def test_a_password_change_keeps_the_user_id_and_bumps_the_credential_version(stack: Any) -> None:
    login, _ = new_user("versioned")
    before = UserModel.get(login)
    assert auth.add_user(login, "another long password") is False
    after = UserModel.get(login)
    assert after.user_id == before.user_id
    assert after.credential_version == before.credential_version + 1


def test_a_cached_credential_costs_one_read_of_the_users_table_per_request(
    stack: Any, user: tuple[str, str], dynamo_calls: Any
) -> None:
    auth.clear_cache()
    auth.authenticate(*user)
    dynamo_calls.ops.clear()
    dynamo_calls.tables.clear()
    auth.authenticate(*user)
    # The user's record (id, credential version) and the lock come in the one call the lock needed.
    assert dynamo_calls.ops == ["BatchGetItem"]


def test_a_cached_credential_of_a_removed_login_made_again_is_the_new_user(stack: Any) -> None:
    login, password = new_user("reborn")
    first = auth.authenticate(login, password)
    UserModel.get(login).delete()  # removed elsewhere: this process's cache still holds the credential
    assert _cached(login, password)
    with pytest.raises(Unauthorized):
        auth.authenticate(login, password)
    auth.add_user(login, password)
    again = auth.authenticate(login, password)
    assert again.login == login
    assert again.id != first.id
