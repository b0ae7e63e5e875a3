"""The operator dashboard at `/ui`: one server-rendered shell, a small script over the JSON API.

The API key is typed into a login form and kept in the tab's sessionStorage; every call sends it as a
bearer header, so there is no cookie and no CSRF surface. `GET /ui/api/jobs/{id}/plots` (same bearer key)
draws the job's plots as PNG data URIs.
"""

from app.ui.router import router

__all__ = ["router"]
