"""ProjectsFunction: /project/new, /project/list, /project/info."""

from mangum import Mangum

from sputnik.api.projects import create_projects_app

app = create_projects_app()
handler = Mangum(app, lifespan="off")
