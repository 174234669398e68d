"""Stage function: s2_composite, stage 2: reduce one block of the composite."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import composite_block
from sputnik.tasks.stage import stage_handler

handler = stage_handler(composite_block.run)
initialised()
