"""The FastAPI app the Airflow API server mounts at ``/seedcoder``: HTML pages (shown inside the Airflow UI as
external views) and their JSON twins under ``/seedcoder/api``.

Read-only: every route is a GET, nothing writes to the lake or the database. Every route needs an Airflow user
allowed to read DAG runs (the UI's session cookie or a bearer token, checked by Airflow's own auth manager).
Secrets never appear: pages show stats and lake paths, and every JSON value under a secret-looking key is masked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lake.catalog import LakeCatalog
from lake.stage import SNAPSHOT_RE, STATS
from seedcoder_ui import runs, views
from seedcoder_ui.pipeline import STAGES

log = logging.getLogger(__name__)
URL_PREFIX = "/seedcoder"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _default_catalog() -> LakeCatalog:
    from lake.config import load_config

    cfg = load_config()
    return LakeCatalog(cfg.open_lake(), ttl_s=cfg.ui.cache_ttl_s, workers=cfg.ui.workers)


def _default_per_page() -> int:
    from lake.config import load_config

    return load_config().ui.snapshots_per_page


def _default_session() -> AbstractContextManager:
    from airflow.utils.session import create_session

    return create_session()


def _require_reader() -> Callable:
    """Airflow's own check: an authenticated user who may read DAG runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN)


def _check_snapshot(snapshot: str) -> str:
    if not SNAPSHOT_RE.match(snapshot):
        raise HTTPException(404, f"no such snapshot: {snapshot!r}")
    return snapshot


def create_app(*, catalog: Callable[[], LakeCatalog] = _default_catalog,
               session: Callable[[], AbstractContextManager] = _default_session,
               per_page: Callable[[], int] = _default_per_page, auth: Callable | None = None) -> FastAPI:
    """The plugin's app. The factories are called lazily (the lake and config are read on first request)."""
    app = FastAPI(title="seedcoder lake", docs_url=None, redoc_url=None, openapi_url=None)
    state: dict[str, Any] = {}
    lock = threading.Lock()

    def get_catalog() -> LakeCatalog:
        with lock:
            if "catalog" not in state:
                state["catalog"] = catalog()
                state["per_page"] = per_page()
            return state["catalog"]

    def task_instances(names=None, kind: str = "snapshot") -> dict[str, dict[str, dict]]:
        with session() as s:
            return runs.latest_task_instances(s, names, kind)

    router = APIRouter(dependencies=[Depends(auth or _require_reader())])

    def render(request: Request, template: str, model: dict, status: int = 200) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        airflow = base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else ""
        return TEMPLATES.TemplateResponse(request, template, {"m": model, "base": base, "airflow": airflow,
                                                               "q": lambda v: quote(str(v), safe="")},
                                          status_code=status)

    def snapshot_or_404(name: str) -> tuple[dict, LakeCatalog]:
        _check_snapshot(name)
        cat = get_catalog()
        model = views.snapshot_page(cat, name, task_instances([name]).get(name, {}))
        if not model["exists"]:
            raise HTTPException(404, f"snapshot {name!r} has no committed stage and no DAG run")
        return model, cat

    # -- JSON --------------------------------------------------------------------------------------------------
    @router.get("/api/snapshots")
    def api_snapshots(page: int = 1) -> JSONResponse:
        cat = get_catalog()
        return JSONResponse(views.redact(views.snapshots_page(cat, task_instances(), page,
                                                              state["per_page"])))

    @router.get("/api/snapshots/{snapshot}")
    def api_snapshot(snapshot: str) -> JSONResponse:
        return JSONResponse(views.redact(snapshot_or_404(snapshot)[0]))

    @router.get("/api/snapshots/{snapshot}/quality")
    def api_quality(snapshot: str) -> JSONResponse:
        _, cat = snapshot_or_404(snapshot)
        return JSONResponse(views.redact(views.quality_page(cat, snapshot)))

    @router.get("/api/snapshots/{snapshot}/dedup")
    def api_dedup(snapshot: str) -> JSONResponse:
        _, cat = snapshot_or_404(snapshot)
        return JSONResponse(views.redact(views.dedup_page(cat, snapshot)))

    def stats_file(kind: str, name: str, stage: str) -> Response:
        """The committed ``_stats.json`` of a stage, as the stage wrote it (secret-looking values masked)."""
        _check_snapshot(name)
        if stage not in STAGES or STAGES[stage].partition != kind:
            raise HTTPException(404, f"no such {kind} stage: {stage!r}")
        commit = get_catalog().stages(name, kind).get(stage)
        doc = get_catalog().attempt_json(commit, STATS) if commit else None
        if doc is None:
            raise HTTPException(404, f"stage {stage!r} of {kind} {name!r} is not committed")
        return Response(json.dumps(views.redact(doc), indent=2, sort_keys=True) + "\n",
                        media_type="application/json")

    @router.get("/snapshots/{snapshot}/stages/{stage}/_stats.json")
    def snapshot_stats_file(snapshot: str, stage: str) -> Response:
        return stats_file("snapshot", snapshot, stage)

    @router.get("/releases/{release}/stages/{stage}/_stats.json")
    def release_stats_file(release: str, stage: str) -> Response:
        return stats_file("release", release, stage)

    def release_or_404(name: str) -> dict:
        _check_snapshot(name)
        model = views.release_page(get_catalog(), name, task_instances([name], "release").get(name, {}))
        if not model["exists"]:
            raise HTTPException(404, f"release {name!r} has no committed stage and no DAG run")
        return model

    # -- pages -------------------------------------------------------------------------------------------------
    @router.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/snapshots", status_code=307)

    @router.get("/snapshots", response_class=HTMLResponse)
    def snapshots_html(request: Request, page: int = 1) -> HTMLResponse:
        cat = get_catalog()
        model = views.snapshots_page(cat, task_instances(), page, state["per_page"])
        return render(request, "snapshots.html", model)

    @router.get("/snapshots/{snapshot}", response_class=HTMLResponse)
    def funnel_html(request: Request, snapshot: str) -> HTMLResponse:
        return render(request, "funnel.html", snapshot_or_404(snapshot)[0])

    @router.get("/snapshots/{snapshot}/quality", response_class=HTMLResponse)
    def quality_html(request: Request, snapshot: str) -> HTMLResponse:
        _, cat = snapshot_or_404(snapshot)
        return render(request, "quality.html", views.quality_page(cat, snapshot))

    @router.get("/snapshots/{snapshot}/dedup", response_class=HTMLResponse)
    def dedup_html(request: Request, snapshot: str) -> HTMLResponse:
        _, cat = snapshot_or_404(snapshot)
        return render(request, "dedup.html", views.dedup_page(cat, snapshot))

    @router.get("/api/releases")
    def api_releases() -> JSONResponse:
        return JSONResponse(views.redact(views.releases_page(get_catalog(), task_instances(kind="release"))))

    @router.get("/api/releases/{release}")
    def api_release(release: str) -> JSONResponse:
        return JSONResponse(views.redact(release_or_404(release)))

    @router.get("/releases", response_class=HTMLResponse)
    def releases_html(request: Request) -> HTMLResponse:
        return render(request, "releases.html", views.releases_page(get_catalog(), task_instances(kind="release")))

    @router.get("/releases/{release}", response_class=HTMLResponse)
    def release_html(request: Request, release: str) -> HTMLResponse:
        return render(request, "release.html", release_or_404(release))

    @router.get("/dag_run/{dag_id}/{run_id:path}", response_class=HTMLResponse)
    def from_dag_run(request: Request, dag_id: str, run_id: str) -> Response:
        """The DAG run page's tab: straight to the funnel of the run's snapshot (or the page of its release)."""
        with session() as s:
            kind, ids = runs.partitions_of_run(s, dag_id, run_id)
        pages = {"snapshot": "snapshots", "release": "releases"}
        if len(ids) == 1 and kind in pages:
            return RedirectResponse(f"{request.scope.get('root_path', '')}/{pages[kind]}/{quote(ids[0])}",
                                    status_code=307)
        model = {"dag_id": dag_id, "run_id": run_id, "kind": kind, "ids": ids, "page": pages.get(kind or "")}
        return render(request, "dag_run.html", model, status=200 if ids else 404)

    app.include_router(router)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api") or exc.status_code in (401, 403):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status=exc.status_code)

    return app
