"""Lambda function for /task/list, /task/run, /proc/list."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from mangum import Mangum

from sputnik.api.tasks import create_tasks_app
from sputnik.observability import observe

app = create_tasks_app()
handler = observe(Mangum(app, lifespan="off"))
initialised()
