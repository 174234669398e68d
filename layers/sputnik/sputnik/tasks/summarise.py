"""Last stage of every task: read what the Map's items did, and end the proc SUCCESS or ERRORS."""

from collections import Counter
from typing import Any

from sputnik.tasks import procs
from sputnik.tasks.failures import failure_message
from sputnik.tasks.manifests import read_results
from sputnik.tasks.registry import TASKS

MAX_FAILURES_SHOWN = 20


def item_name(item: dict[str, Any]) -> str:
    """How a failed item is named to the user: its scene or its prefix."""
    inner = item.get("item")
    if not isinstance(inner, dict):
        inner = item
    return str(inner.get("scene_id") or inner.get("prefix") or "an item")


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Sum the items' counts, list the failures, and set the proc's result; the summary."""
    ref = procs.ProcRef.of(event)
    task = TASKS[str(event["task"])]
    results = read_results(event["results"]["ResultWriterDetails"])
    totals: Counter[str] = Counter()
    for output in results.outputs:
        totals.update({k: v for k, v in output.items() if isinstance(v, int) and not isinstance(v, bool)})
    summary: dict[str, Any] = {
        "items": len(results.outputs) + len(results.failures),
        "succeeded": len(results.outputs),
        "failed": len(results.failures),
        **totals,
    }
    if results.failures:
        summary["failures"] = [
            failure_message(item_name(f.item), f.error) for f in results.failures[:MAX_FAILURES_SHOWN]
        ]
    map_script, last_script = task.scripts[-2], task.scripts[-1]
    outcome = procs.proc_done(
        ref,
        task.name,
        {map_script: procs.ERRORS if results.failures else procs.SUCCESS, last_script: procs.SUCCESS},
        summary,
    )
    return {"result": outcome, **summary}
