"""The crawl stage: a snapshot's repositories into the lake (local source here; GitHub in crawl.github)."""
