"""What keeps `genre-cnn serve` to its own user: Host and Origin checks, and a private upload folder.

    from genre_cnn.app.serve_guard import SameOrigin, private_upload_dir     # used by genre_cnn.app.serve

A page on another site can POST to a server on localhost (a text/plain POST needs no preflight), and DNS
rebinding lets such a page read the answers under a name of its own. As Jupyter does, a request is served
only when its Host header names the address the connection arrived at (an IP literal; `localhost` for a
loopback address; this machine's own host name otherwise) with the server's port, and when its Origin, if
it has one, is the page's own (`http://` + Host). Anything else gets 403 and one line.

Uploads go to `genre-cnn-serve-PID-XXXX` in the system's temporary folder, one per server process; a folder
whose process no longer runs (a server killed with SIGKILL) is removed when the next server makes its own.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "genre-cnn-serve-"


def refusal(headers: dict[str, str], server: tuple[str, int] | None) -> str | None:
    """Why a request with these (lower-case) headers, arriving at `server` (address, port), is refused; or None."""
    host = headers.get("host", "")
    try:
        parts = urlsplit("//" + host)
        name, port = (parts.hostname or "").lower(), parts.port or 80
    except ValueError:
        name, port = "", None
    if server is None or not name or port != server[1] or name not in _names(server[0]):
        return f"refused: the Host header {host[:80]!r} does not name this server"
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host.lower()}":
        return f"refused: a request from another site ({origin[:80]!r})"
    return None


def _names(address: str) -> set[str]:
    """The host names a request to `address` (the connection's local address) may use."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return set()
    if ip.is_loopback:
        return {str(ip), "localhost", "127.0.0.1", "::1"}
    host = socket.gethostname().lower()
    return {str(ip), host, f"{host}.local", socket.getfqdn().lower()}


class SameOrigin:
    """ASGI middleware: `refusal` for every HTTP request, answered with 403 {"error": one line}."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            why = refusal(headers, scope.get("server"))
            if why is not None:
                from starlette.responses import JSONResponse

                await JSONResponse({"error": why}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_stale(parent: Path) -> list[Path]:
    """Removes this user's upload folders under `parent` whose server process is gone; returns them."""
    removed = []
    for folder in Path(parent).glob(PREFIX + "*"):
        match = re.fullmatch(PREFIX + r"(\d+)-\w+", folder.name)
        if not match or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        if not _alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def private_upload_dir(parent: Path | None = None) -> Path:
    """A new folder for this process's uploads (mode 0700), after removing those of servers that are gone."""
    parent = Path(parent or tempfile.gettempdir())
    sweep_stale(parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
