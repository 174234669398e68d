"""Stage function: s2_load_meta, stage 1: plan the tile-months to scan."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import plan_months
from sputnik.tasks.stage import stage_handler

handler = stage_handler(plan_months.run)
initialised()
