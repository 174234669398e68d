"""Per-user quotas: running procs at once, runs per day and projects, counted exactly under concurrency.

Each count is a counter item of the user's immutable id, changed only by conditional updates (or in
the same transaction as the record it counts), so ten simultaneous requests against a limit of three
pass exactly three times and a refused one writes nothing. A proc holds a running slot from the
transaction that writes it until it ends: `release_running` gives the slot back once, however often
the end is reported.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.transactions import TransactWrite

from sputnik.errors import QuotaExceeded
from sputnik.models import CounterModel, ProcModel, transact
from sputnik.settings import get_settings

RUNNING_RETRY = 60  # seconds a caller at the running limit waits before trying again
PROJECTS_RETRY = 3600  # nothing frees a project slot by itself
CONDITION_FAILED = "ConditionalCheckFailed"
CONFLICT_RETRIES = 6


@dataclass(frozen=True)
class Limits:
    """The per-user limits of this stack (template parameters)."""

    running_procs: int
    runs_per_day: int
    projects: int


def limits() -> Limits:
    """The limits the template set for this stack."""
    settings = get_settings()
    return Limits(int(settings.max_running_procs), int(settings.max_runs_per_day), int(settings.max_projects))


def running_key(owner: str) -> str:
    """Counter of a user's procs not yet ended."""
    return f"running#{owner}"


def runs_key(owner: str, day: str) -> str:
    """Counter of a user's runs started on one UTC day."""
    return f"runs#{owner}#{day}"


def projects_key(owner: str) -> str:
    """Counter of a user's projects."""
    return f"projects#{owner}"


def _below(limit: int) -> Any:
    """The condition that a counter may grow by one without passing `limit`."""
    return CounterModel.value.does_not_exist() | (CounterModel.value < limit)


def _until_tomorrow(now: datetime) -> int:
    """Seconds until the next UTC day starts, when a day's run count starts again."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


def reserve_project(owner: str) -> None:
    """Count one more project for the user, or raise QuotaExceeded at the limit."""
    limit = limits().projects
    try:
        CounterModel(projects_key(owner)).update(actions=[CounterModel.value.add(1)], condition=_below(limit))
    except UpdateError as exc:
        if exc.cause_response_code != CONDITION_FAILED + "Exception":
            raise
        raise QuotaExceeded(f"limit reached: at most {limit} projects per user", PROJECTS_RETRY) from exc


def release_project(owner: str) -> None:
    """Count one project less (it was deleted, or its creation failed after the reservation)."""
    try:
        CounterModel(projects_key(owner)).update(
            actions=[CounterModel.value.add(-1)], condition=CounterModel.value > 0
        )
    except UpdateError as exc:
        if exc.cause_response_code != CONDITION_FAILED + "Exception":
            raise


def _transact(write: Callable[[TransactWrite], None]) -> list[str | None]:
    """Run a transaction; the reason codes of its items when conditions refused it, [] when it passed.

    Parallel transactions on one counter cancel each other (TransactionConflict) on AWS, however few
    pass their conditions: those are tried again, so that ten simultaneous runs still end as the
    limit says and not as the collisions fell.
    """
    return transact(write, CONFLICT_RETRIES + 1)


def save_proc_counted(proc: ProcModel, owner: str) -> None:
    """Write a new proc, taking a running slot and a run of today, all at once or not at all."""
    quota = limits()
    now = datetime.now(UTC)
    day = now.date().isoformat()
    proc.running_slot = 1

    def write(tx: TransactWrite) -> None:
        tx.save(proc, condition=ProcModel.event_id.does_not_exist())
        tx.update(
            CounterModel(running_key(owner)),
            actions=[CounterModel.value.add(1)],
            condition=_below(quota.running_procs),
        )
        tx.update(
            CounterModel(runs_key(owner, day)),
            # Kept a day longer than it counts, then DynamoDB deletes it.
            actions=[CounterModel.value.add(1), CounterModel.expires.set(now + timedelta(days=2))],
            condition=_below(quota.runs_per_day),
        )

    # The items' reasons come in the order DynamoDB got them: the proc (a put), then the two counters.
    reasons = _transact(write)
    if reasons[1:2] == [CONDITION_FAILED]:
        raise QuotaExceeded(
            f"limit reached: at most {quota.running_procs} running procs per user; wait until one ends",
            RUNNING_RETRY,
        )
    if reasons[2:3] == [CONDITION_FAILED]:
        raise QuotaExceeded(
            f"limit reached: at most {quota.runs_per_day} runs per user per day (UTC)",
            _until_tomorrow(now),
        )
    if reasons:
        raise RuntimeError(f"proc {proc.event_id} exists already")  # ids come from a counter: a bug


def end_holding_slot(proc: ProcModel, actions: list[Any], condition: Any = None) -> bool:
    """Write a proc's end and give back the running slot it holds in one transaction; False if not done.

    One write, so that whoever sees the proc ended finds its slot free: a run started right after a
    proc is seen DONE is not refused for that proc's slot. Nothing is written when the proc holds no
    slot (any more) or `condition` on the proc does not hold.
    """
    return proc.running_slot is not None and _give_back(proc, actions, condition)


def release_running(proc: ProcModel) -> bool:
    """Give back the running slot an ended proc holds, exactly once; whether this call gave it back."""
    return _give_back(proc, [], None)


def _give_back(proc: ProcModel, actions: list[Any], condition: Any) -> bool:
    """Remove the proc's slot (with `actions`, if `condition` holds) and count it free, all at once."""
    if not proc.owner:
        return False  # a proc from before quotas holds no slot
    held = ProcModel.running_slot.exists()

    def write(tx: TransactWrite) -> None:
        tx.update(
            ProcModel(proc.project_id, proc.event_id),
            actions=[*actions, ProcModel.running_slot.remove()],
            condition=held if condition is None else held & condition,
        )
        tx.update(
            CounterModel(running_key(str(proc.owner))),
            actions=[CounterModel.value.add(-1)],
            condition=CounterModel.value > 0,
        )

    # Refused when the slot was given back already (the end reported twice) or `condition` failed.
    return not _transact(write)
