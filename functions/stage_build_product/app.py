"""Stage function: s2_load_data, stage 2: build one scene's RGB product."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import build_product
from sputnik.tasks.stage import stage_handler

handler = stage_handler(build_product.run)
initialised()
