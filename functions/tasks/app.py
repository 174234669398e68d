"""Lambda function for /task/list, /task/run, /proc/list."""

from mangum import Mangum

from sputnik.api.tasks import create_tasks_app

app = create_tasks_app()
handler = Mangum(app, lifespan="off")
