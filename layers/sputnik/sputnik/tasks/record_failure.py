"""What every stage's Catch runs: the proc ends FATAL with a one-line message."""

from typing import Any

from sputnik.tasks import procs
from sputnik.tasks.failures import failure_message


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Record the failure the Catch passed in `error` on the proc; the message."""
    ref = procs.ProcRef.of(event)
    proc = procs.get_proc(ref)
    message = failure_message(procs.running_script(proc) or str(proc.task), event.get("error"))
    procs.proc_failed(proc, message)
    return {"result": procs.FATAL, "message": message}
