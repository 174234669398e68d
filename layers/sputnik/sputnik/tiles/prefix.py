"""Serving the tile apps under a path prefix (API Gateway stages, custom-domain mapping keys)."""

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send


class MountPrefixMiddleware:
    """Move whatever precedes the app's mount point in the path into root_path.

    API Gateway (a named stage, a custom domain's mapping key) and the local front pass the path
    as the client sent it, e.g. `/prod/cog/tiles/...`. With `/prod` as root_path, routing sees
    `/cog/tiles/...` and every URL the app builds (tilejson, WMTS) keeps the `/prod` prefix, so
    it works when followed as it is.
    """

    def __init__(self, app: ASGIApp, mount: str, others: Sequence[str] = ()) -> None:
        self.app = app
        self.mounts = [m.rstrip("/") for m in (mount, *others)]  # an app may serve several

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set root_path from the path's prefix, then call the app."""
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            route = path[len(root) :] if root and path.startswith(root) else path
            if not any(route == m or route.startswith(m + "/") for m in self.mounts):
                found = [i for m in self.mounts if (i := route.find(m + "/")) > 0]
                if found:
                    scope = {**scope, "root_path": root + route[: min(found)]}
        await self.app(scope, receive, send)
