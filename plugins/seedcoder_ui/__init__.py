"""The Airflow UI plugin's package: lake pages (snapshots, funnel, quality, dedup) served by the API server.

Airflow loads ``plugins/seedcoder_ui_plugin.py``; this package is imported from there (``plugins/.airflowignore``
keeps Airflow from executing its files as separate top-level plugin modules).
"""
