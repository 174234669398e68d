"""Stage function: s2_index, stage 2: build one scene's index product and its statistics."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import build_index
from sputnik.tasks.stage import stage_handler

handler = stage_handler(build_index.run)
initialised()
