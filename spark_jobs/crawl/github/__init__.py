"""The GitHub source of the crawl stage: GH Archive discovery, REST metadata, tarball fetch, commit history.

Modules: :mod:`.gharchive` (active repositories from hourly event files), :mod:`.api` (the HTTP client),
:mod:`.select` (thresholds), :mod:`.tarball` (streaming extraction), :mod:`.commits` (history from a bare,
blob-filtered clone), :mod:`.fetch` (the per-repository work on executors), :mod:`.fetch_cache` (what was
already downloaded), :mod:`.stage` (the Spark driver behind ``stages.crawl.source: github``), :mod:`.config`.
"""
