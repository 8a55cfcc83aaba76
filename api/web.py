"""The browser's side: the page shell, each domain's page module, the API docs.

The shell (`web/index.html`, `web/app.js`) is one small app: it reads the
manifest (`/app/manifest.json`: each domain's title, path and page module)
to build its navigation, and shows a domain's page by importing its module,
served from the domain's own folder at `/domains/<name>/`. Nothing here
knows a domain by name.

`/docs` is Swagger UI (the `swagger-ui-py` package's copy, served from here:
no CDN) reading `/openapi.json`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from api.openapi import document
from contracts.registry import Registry

# Swagger UI 5 (OpenAPI 3.1), as the swagger-ui-py package ships it.
SWAGGER_UI: Final = Path(str(files("swagger_ui") / "static"))
DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>API docs · notify-service</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""


# In a file of its own, not inline: the Content-Security-Policy allows no inline script.
DOCS_INIT: Final = (
    "window.ui = SwaggerUIBundle("
    '{ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });\n'
)


def manifest(registry: Registry) -> list[dict[str, str]]:
    return [
        {
            "name": d.name,
            "title": d.page.title,
            "summary": d.page.summary,
            "path": d.page.path,
            "module": f"/domains/{d.name}/{d.page.module}",
        }
        for d in registry.domains
        if d.page is not None
    ]


def auth(registry: Registry) -> dict[str, str] | None:
    """Where the browser signs in and up, if a domain declares a SignIn."""
    found = registry.sign_in
    return None if found is None else {"signin": found.signin_page, "signup": found.signup_page}


def routes(registry: Registry, web_dir: Path, *, dev: bool = False) -> list[BaseRoute]:
    pages = manifest(registry)
    sign_in = auth(registry)
    spec = document(registry)

    def shell(request: Request) -> Response:
        return FileResponse(web_dir / "index.html")

    def app_manifest(request: Request) -> Response:
        return JSONResponse({"pages": pages, "auth": sign_in, "dev": dev})

    def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_PAGE)

    def docs_init(request: Request) -> Response:
        return Response(DOCS_INIT, media_type="text/javascript")

    found: list[BaseRoute] = [
        Route("/", shell),
        Route("/app/manifest.json", app_manifest),
        Route("/openapi.json", openapi),
        Route("/docs", docs),
        Route("/docs/init.js", docs_init),
        Mount("/docs/static", StaticFiles(directory=SWAGGER_UI)),
        Mount("/static", StaticFiles(directory=web_dir), name="static"),
    ]
    for domain in registry.domains:
        if domain.page is None:
            continue
        found += [
            Route(domain.page.path, shell),
            Route(domain.page.path + "/{rest:path}", shell),
            Mount(f"/domains/{domain.name}", StaticFiles(directory=domain.page.folder)),
        ]
    return found
