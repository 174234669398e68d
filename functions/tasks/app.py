"""Lambda function for /task/list, /task/run, /proc/list."""

from mangum import Mangum

from sputnik.api.tasks import create_tasks_app
from sputnik.observability import observe

app = create_tasks_app()
handler = observe(Mangum(app, lifespan="off"))
