"""The lake contract shared by every stage, on Spark executors and on GPU pods alike.

Layout, commit protocol, record schemas, typed configuration and stage statistics live here and nowhere
else, so a Spark job and a torch job agree on what a committed partition is without importing each other.
"""

from lake.config import PlatformConfig, load_config
from lake.stage import Lake, StageRun, StageStats

__all__ = ["Lake", "PlatformConfig", "StageRun", "StageStats", "load_config"]
