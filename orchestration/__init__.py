"""Dagster wiring over lake/, growth_loops/ and expectations/ (the only package importing dagster)."""

import warnings

# Partitioned asset checks (a check result per hour, like the asset) are marked "preview" in
# Dagster 1.13; we rely on them deliberately, so the warning is noise for every user.
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=Warning)
warnings.filterwarnings("ignore", message=r".*partitions_def.*asset_check.*preview", category=Warning)
