"""Lambda function for /cog: titiler's COG tiler behind sputnik's auth and URL policy."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from mangum import Mangum

from sputnik.api.cog import create_cog_app
from sputnik.observability import observe
from sputnik.tiles.gdal import configure_gdal

# GDAL reads its options from the environment when it first needs them, i.e. after this.
configure_gdal()
app = create_cog_app()
handler = observe(Mangum(app, lifespan="off"))
initialised()
