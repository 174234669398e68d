"""Serving the tile apps under a path prefix (API Gateway stages, custom-domain mapping keys)."""

from starlette.types import ASGIApp, Receive, Scope, Send


class MountPrefixMiddleware:
    """Move whatever precedes the app's mount point in the path into root_path.

    API Gateway (a named stage, a custom domain's mapping key) and the local front pass the path
    as the client sent it, e.g. `/prod/cog/tiles/...`. With `/prod` as root_path, routing sees
    `/cog/tiles/...` and every URL the app builds (tilejson, WMTS) keeps the `/prod` prefix, so
    it works when followed as it is.
    """

    def __init__(self, app: ASGIApp, mount: str) -> None:
        self.app = app
        self.mount = mount.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set root_path from the path's prefix, then call the app."""
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            route = path[len(root) :] if root and path.startswith(root) else path
            if not (route == self.mount or route.startswith(self.mount + "/")):
                index = route.find(self.mount + "/")
                if index > 0:
                    scope = {**scope, "root_path": root + route[:index]}
        await self.app(scope, receive, send)
