"""Users and HTTP Basic authentication: argon2id hashes, lockout, a short verified-credential cache.

Lockout counts failures per login *and* source address: a guesser locks only their own address out
of a login, never its owner at another address. Every request reads the user's record and its
failure record together (one consistent BatchGetItem), also when the password was verified moments
ago: a lock wins over the credential cache, and so do a removal and a password change, because a
cached credential is honoured only while the record still has the same user id and credential version.
"""

import contextlib
import hashlib
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

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
# Made once by HASHER.hash with HASHER's parameters: hashing at import would slow every cold start.
_DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$6akxP360SrMIUIa5Vb/cjg$HsbhsyFKWRZDF1fuBQkHr2oT0byNkG2HGN+tqwXFajQ"
)


@dataclass(frozen=True)
class User:
    """An authenticated caller: the immutable id that owns what they make, and the login they gave."""

    id: str
    login: str


@dataclass(frozen=True)
class _Verified:
    """A cache entry: until when, and for which user id and credential version, a password is known good."""

    until: float
    user_id: str
    version: int


_cache: dict[str, _Verified] = {}
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


def new_user_id() -> str:
    """A fresh user id: random, so a login made again never gets an earlier user's id."""
    return str(uuid.uuid4())


def add_user(login: str, password: str, *, demo: bool = False) -> bool:
    """Create a login with a new user id, or change its password; True when created.

    A password change increments the credential version, which ends every cached credential at once.
    `demo` skips the length rule.
    """
    validate_login(login)
    if len(password) < MIN_PASSWORD and not demo:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    password_hash = HASHER.hash(password)
    try:
        UserModel(
            login,
            password_hash=password_hash,
            user_id=new_user_id(),
            credential_version=1,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        ).save(condition=UserModel.login.does_not_exist())
        created = True
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        UserModel(login).update(
            actions=[
                UserModel.password_hash.set(password_hash),
                UserModel.credential_version.add(1),
                # A login made before user ids gets one here; `sputnik users migrate-ids` re-owns its data.
                UserModel.user_id.set(UserModel.user_id | new_user_id()),
            ],
            condition=UserModel.login.exists(),
        )
        created = False
    clear_cache()
    return created


def get_user(login: str) -> UserModel:
    """The record of a login, or NotFound."""
    try:
        return UserModel.get(validate_login(login), consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"no user {login!r}") from exc


def delete_user(user: UserModel) -> None:
    """Delete a login's record: every credential of it, cached in any function, stops working at once."""
    try:
        user.delete(condition=UserModel.login.exists())
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise NotFound(f"no user {user.login!r}") from exc
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


def _records(login: str, source: str) -> tuple[UserModel | None, UserModel | None]:
    """The login's record and its failure record from this address: one consistent BatchGetItem."""
    fail_key = _failure_key(login, source)
    found = {u.login: u for u in UserModel.batch_get([login, fail_key], consistent_read=True)}
    return found.get(login), found.get(fail_key)


def authenticate(login: str, password: str, source: str = "") -> User:
    """Return the user if the password is right and the login not locked for this source address.

    Raise Unauthorized otherwise. `source` is the client's address (API Gateway's sourceIp).
    """
    if not LOGIN_RE.match(login):
        _verify(_DUMMY_HASH, password)  # a malformed login cannot exist; still costs one verify
        raise Unauthorized("invalid credentials")
    key = _cache_key(login, password)
    now = time.time()
    with _cache_lock:
        cached = _cache.get(key)
    user, failures = _records(login, source)
    if (
        cached is not None
        and cached.until > now
        and user is not None
        and user.user_id == cached.user_id
        and int(user.credential_version or 0) == cached.version
    ):
        # The password is known good for this very user and version, but a lock set since still wins.
        if _locked(failures, now):
            _record_failure(login, source, now)
            raise Unauthorized("invalid credentials")
        return User(cached.user_id, login)
    # Known or not, locked or not: one argon2 verify and one failure write, so timing tells nothing.
    ok = _verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    # A login from before user ids owns nothing until `sputnik users migrate-ids` gives it one.
    if not ok or user is None or not user.user_id or _locked(failures, now):
        _record_failure(login, source, now)
        raise Unauthorized("invalid credentials")
    if failures is not None:
        failures.delete()  # a success forgives earlier failures, as users expect
    verified = _Verified(now + CACHE_SECONDS, str(user.user_id), int(user.credential_version or 0))
    with _cache_lock:
        _cache[key] = verified
    return User(verified.user_id, login)


def _locked(failures: UserModel | None, now: float) -> bool:
    """Whether a failure record locks its login now."""
    return failures is not None and (failures.locked_until or 0) > now


def _verify(password_hash: str, password: str) -> bool:
    """Check a password against an argon2 hash in constant time."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
