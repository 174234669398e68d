"""Lambda function for /rgb: a project's RGB products and their map tiles."""

from mangum import Mangum

from sputnik.api.rgb import create_rgb_app
from sputnik.tiles.gdal import configure_gdal

# GDAL reads its options from the environment when it first needs them, i.e. after this.
configure_gdal()
app = create_rgb_app()
handler = Mangum(app, lifespan="off")
