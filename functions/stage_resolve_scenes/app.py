"""Stage function: s2_load_data, stage 1: resolve the scenes to make products of."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import resolve_scenes
from sputnik.tasks.stage import stage_handler

handler = stage_handler(resolve_scenes.run)
initialised()
