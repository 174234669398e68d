"""A moto server that hands every request it serves to a recorder, which may answer in moto's place."""

from collections.abc import Callable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

# One request the moto server served: method, path (no query string) and Range header, if any.
RecordedRequest = tuple[str, str, str | None]
# An answer served instead of moto's: HTTP status line and body (e.g. S3's 503 SlowDown), for fault tests.
Fault = tuple[str, bytes]


class RecordingMotoServer(ThreadedMotoServer):
    """moto's threaded server, its WSGI app wrapped so that every request is handed to `record` first.

    When `record` returns a Fault, that is the answer instead of moto's.
    """

    def __init__(self, record: Callable[[RecordedRequest], Fault | None], ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self._record = record

    def _server_entry(self) -> None:
        """Serve moto's app as ThreadedMotoServer does, through the recorder."""
        app = DomainDispatcherApplication(create_backend_app)
        record = self._record

        def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            fault = record((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_RANGE")))
            if fault is not None:
                status, body = fault
                start_response(
                    status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                )
                return [body]
            return app(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, recording, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()
