"""ProjectsFunction: /project/new, /project/list, /project/info."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from mangum import Mangum

from sputnik.api.projects import create_projects_app
from sputnik.observability import observe

app = create_projects_app()
handler = observe(Mangum(app, lifespan="off"))
initialised()
