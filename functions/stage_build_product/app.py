"""Stage function: s2_load_data, stage 2: build one scene's RGB product."""

from sputnik.cog import configure_gdal
from sputnik.tasks import build_product
from sputnik.tasks.stage import stage_handler

# GDAL reads its options from the environment when it first needs them, i.e. after this.
configure_gdal()
handler = stage_handler(build_product.run)
