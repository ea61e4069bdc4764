"""The tenant console: the static page in `console/`, served by the Ingress at /console/.

Open without the API key (the files hold no data and no secret; the page asks for the key and
sends it with each API call). Every response carries a strict Content-Security-Policy: the page
runs only its own script and talks only to this origin, so a stored document that looks like HTML
can never run as script next to the tenant's key.
"""

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console"
CONSOLE_PATH = "/console"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load, so an upgraded image serves its own console at once.
    "Cache-Control": "no-cache",
}


def is_console(path: str) -> bool:
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


class ConsoleFiles(StaticFiles):
    def __init__(self) -> None:
        super().__init__(directory=CONSOLE_DIR, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response
