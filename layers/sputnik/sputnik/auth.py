"""Users and HTTP Basic authentication: argon2id hashes, lockout, a short verified-credential cache.

Lockout counts failures per login *and* source address: a guesser locks only their own address out
of a login, never its owner at another address. The lock is checked on every request, also when the
password was verified moments ago, so a lock wins over the credential cache.
"""

import contextlib
import hashlib
import re
import threading
import time
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pynamodb.exceptions import DoesNotExist, UpdateError

from sputnik.errors import InvalidInput, NotFound, Unauthorized
from sputnik.models import UserModel

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): ~30 ms on a Lambda vCPU.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

MAX_FAILURES = 5  # failed attempts allowed inside one window...
FAILURE_WINDOW = 15 * 60  # ...of this many seconds; the next one locks the login
LOCK_SECONDS = 15 * 60  # for this long, whatever password is sent
CACHE_SECONDS = 60  # how long a verified login/password pair skips hashing in this process

LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
FAIL_PREFIX = "!fail:"  # cannot collide with a login: logins never start with "!"

# Verified against when the login is unknown, so an unknown login costs one argon2 verify too.
_DUMMY_HASH = HASHER.hash("sputnik-no-such-user")
_cache: dict[str, float] = {}
_cache_lock = threading.Lock()


def _cache_key(login: str, password: str) -> str:
    """Key the cache by a digest so no password is kept in memory."""
    return hashlib.sha256(f"{login}\0{password}".encode()).hexdigest()


def clear_cache() -> None:
    """Forget every cached credential (tests, password changes in this process)."""
    with _cache_lock:
        _cache.clear()


def validate_login(login: str) -> str:
    """Return the login if it is well-formed, else raise InvalidInput."""
    if not LOGIN_RE.match(login):
        raise InvalidInput(
            "login must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting alphanumeric"
        )
    return login


def add_user(login: str, password: str, *, demo: bool = False) -> None:
    """Create a login (or replace its password) with an argon2id hash; `demo` skips the length rule."""
    validate_login(login)
    if len(password) < MIN_PASSWORD and not demo:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    UserModel(
        login,
        password_hash=HASHER.hash(password),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    ).save()
    clear_cache()


def remove_user(login: str) -> None:
    """Delete a login; raise NotFound if it does not exist."""
    try:
        UserModel.get(validate_login(login)).delete()
    except DoesNotExist as exc:
        raise NotFound(f"no user {login!r}") from exc
    clear_cache()


def list_users() -> list[str]:
    """List logins (an admin command, so a Scan is acceptable here; no request path calls it)."""
    return sorted(
        u.login
        for u in UserModel.scan(UserModel.password_hash.exists())
        if not u.login.startswith(FAIL_PREFIX)
    )


def _failure_key(login: str, source: str) -> str:
    """Key of the failure record of a login from one source address."""
    return f"{FAIL_PREFIX}{login}@{source}"


def _failure_record(login: str, source: str) -> UserModel | None:
    """Return the failure record of a login from a source address, if it has one."""
    try:
        return UserModel.get(_failure_key(login, source), consistent_read=True)
    except DoesNotExist:
        return None


def _record_failure(login: str, source: str, now: float) -> None:
    """Count one failure atomically, locking the login for that source once its window holds too many."""
    record = UserModel(_failure_key(login, source))
    # Failure records expire by themselves (DynamoDB TTL), so probing unknown logins leaves no litter.
    expires = datetime.fromtimestamp(now + FAILURE_WINDOW + LOCK_SECONDS, UTC)
    # ADD is atomic, so parallel guesses cannot undercount each other.
    record.update(
        actions=[
            UserModel.failures.add(1),
            UserModel.window_start.set(UserModel.window_start | now),
            UserModel.expires.set(expires),
        ]
    )
    if now - (record.window_start or now) > FAILURE_WINDOW:
        # The window is over: start a new one, unless a parallel request already did.
        with contextlib.suppress(UpdateError):
            record.update(
                actions=[UserModel.failures.set(1), UserModel.window_start.set(now)],
                condition=UserModel.window_start == record.window_start,
            )
    elif (record.failures or 0) > MAX_FAILURES:
        record.update(actions=[UserModel.locked_until.set(now + LOCK_SECONDS)])


def authenticate(login: str, password: str, source: str = "") -> str:
    """Return the login if the password is right and the login not locked for this source address.

    Raise Unauthorized otherwise. `source` is the client's address (API Gateway's sourceIp).
    """
    key = _cache_key(login, password)
    now = time.time()
    with _cache_lock:
        cached = _cache.get(key, 0) > now
    if cached:
        # The password is known good, but a lock set since (by any function) still wins.
        if _locked(_failure_record(login, source), now):
            _record_failure(login, source, now)
            raise Unauthorized("invalid credentials")
        return login
    if not LOGIN_RE.match(login):
        _verify(_DUMMY_HASH, password)  # a malformed login cannot exist; still costs one verify
        raise Unauthorized("invalid credentials")
    user: UserModel | None
    try:
        user = UserModel.get(login)
    except DoesNotExist:
        user = None
    # Known or not, locked or not: one argon2 verify and one failure write, so timing tells nothing.
    ok = _verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    failures = _failure_record(login, source)
    if not ok or user is None or _locked(failures, now):
        _record_failure(login, source, now)
        raise Unauthorized("invalid credentials")
    if failures is not None:
        failures.delete()  # a success forgives earlier failures, as users expect
    with _cache_lock:
        _cache[key] = now + CACHE_SECONDS
    return login


def _locked(failures: UserModel | None, now: float) -> bool:
    """Whether a failure record locks its login now."""
    return failures is not None and (failures.locked_until or 0) > now


def _verify(password_hash: str, password: str) -> bool:
    """Check a password against an argon2 hash in constant time."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
