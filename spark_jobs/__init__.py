"""Everything that runs on Spark executors: crawl, exact and near dedup, filters, dataset build."""
