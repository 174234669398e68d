"""Stage function: last stage of every task: summarise the items and end the proc."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import summarise
from sputnik.tasks.stage import stage_handler

handler = stage_handler(summarise.run)
initialised()
