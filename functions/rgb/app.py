"""Lambda function for /rgb: a project's RGB products and their map tiles."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from mangum import Mangum

from sputnik.api.rgb import create_rgb_app
from sputnik.observability import observe
from sputnik.tiles.gdal import configure_gdal

# GDAL reads its options from the environment when it first needs them, i.e. after this.
configure_gdal()
app = create_rgb_app()
handler = observe(Mangum(app, lifespan="off"))
initialised()
