"""Stage function: every stage's Catch: end the proc FATAL."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import record_failure
from sputnik.tasks.stage import stage_handler

handler = stage_handler(record_failure.run)
initialised()
