"""RootFunction: the map viewer at /, the API documentation at /docs and /openapi.json."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from pathlib import Path

from mangum import Mangum

from sputnik.api.root import create_root_app
from sputnik.observability import observe

# `make bundle` puts the viewer, the docs' assets and the combined OpenAPI document here.
app = create_root_app(Path(__file__).resolve().parent / "static")
handler = observe(Mangum(app, lifespan="off"))
initialised()
