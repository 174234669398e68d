"""Stage function: s2_composite, stage 1: plan the output grid and its blocks."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.settings import get_settings
from sputnik.tasks import plan_blocks
from sputnik.tasks.stage import stage_handler

# The worker's memory bound sizes every block: without it the stage cannot plan at all.
get_settings().require("composite_block_bytes")
handler = stage_handler(plan_blocks.run)
initialised()
