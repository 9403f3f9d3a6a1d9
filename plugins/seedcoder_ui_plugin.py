"""The seedcoder lake in the Airflow UI: a FastAPI app mounted by the API server and external views that show it.

- ``Lake`` (main navigation, under Browse): every snapshot with each stage's state; a snapshot's funnel, quality
  and dedup pages. The page's own links (``/plugin/seedcoder-lake/...``) open it inside the Airflow UI.
- ``Snapshot funnel`` (a tab of every DAG run's page): straight to the funnel of the run's snapshot.

Airflow 3.3's plugin interface: ``fastapi_apps`` (``app``, ``url_prefix``, ``name``) are mounted by the API server;
``external_views`` with a ``url_route`` are rendered in an iframe inside the UI, ``destination`` picks where
(``nav`` or ``dag_run``; ``{DAG_ID}`` and ``{RUN_ID}`` in ``href`` are filled in by the UI).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from seedcoder_ui.app import URL_PREFIX, create_app


class SeedcoderUiPlugin(AirflowPlugin):
    name = "seedcoder_ui"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "seedcoder lake"}]
    external_views = [
        {"name": "Lake", "href": f"{URL_PREFIX}/snapshots", "url_route": "seedcoder-lake", "destination": "nav",
         "category": "browse"},
        {"name": "Snapshot funnel", "href": f"{URL_PREFIX}/dag_run/{{DAG_ID}}/{{RUN_ID}}",
         "url_route": "seedcoder-funnel", "destination": "dag_run"},
    ]
