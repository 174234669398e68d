"""MetaFunction: /meta/dates, /meta/list."""

from mangum import Mangum

from sputnik.api.meta import create_meta_app

app = create_meta_app()
handler = Mangum(app, lifespan="off")
