"""MetaFunction: /meta/dates, /meta/list."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from mangum import Mangum

from sputnik.api.meta import create_meta_app
from sputnik.observability import observe

app = create_meta_app()
handler = observe(Mangum(app, lifespan="off"))
initialised()
