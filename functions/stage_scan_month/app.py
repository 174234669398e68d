"""Stage function: s2_load_meta, stage 2: scan one tile-month of the archive."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.tasks import scan_month
from sputnik.tasks.stage import stage_handler

handler = stage_handler(scan_month.run)
initialised()
