"""EventBridge target: a task's execution ended FAILED, TIMED_OUT or ABORTED past its Catch; end the proc."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import reconcile
from sputnik.tasks.stage import stage_handler

handler = stage_handler(reconcile.run)
initialised()
