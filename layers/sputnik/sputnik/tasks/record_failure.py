"""What every stage's Catch runs: the proc ends FATAL with a one-line message."""

from typing import Any

from sputnik.tasks import procs
from sputnik.tasks.failures import failure_message


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Record the failure the Catch passed in `error` on the proc; the message, and a count to alarm on."""
    ref = procs.ProcRef.of(event)
    proc = procs.get_proc(ref)
    message = failure_message(procs.running_script(proc) or str(proc.task), event.get("error"))
    ended = procs.proc_failed(proc, message)
    # The count becomes the function's ProcsFailed metric (0 for a retry: the proc had ended); the
    # state machine discards the result.
    return {"result": procs.FATAL, "message": message, "procs_failed": int(ended)}
