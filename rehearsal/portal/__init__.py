"""The reference portal: a small national-portal stand-in the harness can start itself.

`create_app(settings)` builds the Flask app (SQLite in WAL mode, one
connection per request); `serve(settings, …)` runs it on gevent's WSGI
server. The API is documented in ``docs/portal-api.md``.
"""

from .app import create_app
from .settings import PortalSettings

__all__ = ["PortalSettings", "create_app"]
