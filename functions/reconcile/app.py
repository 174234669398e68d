"""EventBridge target: a task's execution ended FAILED, TIMED_OUT or ABORTED past its Catch; end the proc."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.settings import get_settings
from sputnik.tasks import reconcile
from sputnik.tasks.registry import TASKS
from sputnik.tasks.stage import stage_handler

# It tells a task's executions from others by the machines' ARNs: refuse to start without them.
get_settings().require(*(task.machine_setting for task in TASKS.values()))
handler = stage_handler(reconcile.run)
initialised()
