"""Dagster wiring over lake/, growth_loops/ and expectations/ (the only package importing dagster)."""

import warnings

# Partitioned asset checks (a check result per hour, like the asset) are marked "preview" in
# Dagster 1.13; we rely on them deliberately, so the warning is noise for every user.
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=Warning)
warnings.filterwarnings("ignore", message=r".*partitions_def.*asset_check.*preview", category=Warning)
# A check with hooks (orchestration/definitions.py: the trust hooks on every check) is re-wrapped by Dagster
# itself through AssetsDefinition(execution_type=...), a parameter it marks beta: not ours to act on.
warnings.filterwarnings("ignore", message=r"Parameter `execution_type` of function `AssetsDefinition.__init__`",
                        category=Warning)
