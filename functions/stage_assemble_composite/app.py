"""Stage function: s2_composite, stage 3: assemble the blocks into the product."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import assemble_composite
from sputnik.tasks.stage import stage_handler

handler = stage_handler(assemble_composite.run)
initialised()
