"""`/ui` (the dashboard shell), `/ui/static/*` (its script and styles) and `/ui/api/jobs/{id}/plots`."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import CurrentTenant
from app.core.deps import SessionDep
from app.core.problems import ProblemError
from app.jobs import service as jobs_service

HERE = Path(__file__).resolve().parent
STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

# Scripts only from this origin (no inline script, so injected markup cannot run); plots are data: URIs;
# the signed HTML report (self-contained, inline styles) opens as a blob: URL.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    html = _templates.get_template("index.html").render(root=request.scope.get("root_path", ""))
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    if name not in STATIC:
        raise ProblemError(404, "Not Found")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/login")
def login_redirect() -> RedirectResponse:
    return RedirectResponse("/ui#/login")


class Plot(BaseModel):
    name: str
    title: str
    caption: str
    src: str


class Plots(BaseModel):
    job_id: uuid.UUID
    plots: list[Plot]


def _draw(session: SessionDep, tenant: CurrentTenant, job_id: uuid.UUID) -> Plots:
    from app.models import JobEvent, Mask
    from app.ui import plots  # matplotlib: loaded on the first plot, not at API start

    job = jobs_service.get_job(session, tenant, job_id)
    progress = [e.data or {} for e in session.scalars(
        select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "progress").order_by(JobEvent.id))]
    mask = session.scalars(select(Mask).where(Mask.job_id == job.id)).first()
    drawn = [
        ("loss", "Loss during unlearning", "The unlearning objective on the forget set and the retain loss, as the "
         "masked weights were fine-tuned.", plots.loss_curves(progress)),
        ("probabilities", "Answer probabilities before and after", "How likely the model is to produce the "
         "recorded answers: forget should drop, retain should hold.", plots.probabilities(job.metrics or {})),
        ("mask", "Mask density per module", "Which parts of the network GRIN changed (share of each module's "
         "weights selected).", plots.mask_density(mask.summary if mask is not None else {})),
    ]
    return Plots(job_id=job.id, plots=[Plot(name=n, title=t, caption=c, src=s) for n, t, c, s in drawn if s])


@router.get("/api/jobs/{job_id}/plots", response_model=Plots)
async def job_plots(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> Plots:
    return await run_in_threadpool(_draw, session, tenant, job_id)
