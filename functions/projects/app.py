"""ProjectsFunction: /project/new, /project/list, /project/info."""

from mangum import Mangum

from sputnik.api.projects import create_projects_app
from sputnik.observability import observe

app = create_projects_app()
handler = observe(Mangum(app, lifespan="off"))
