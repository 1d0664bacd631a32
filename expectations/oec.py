"""The gate on the OEC mart: sane values, and daily active users within their learned band."""

from __future__ import annotations

from datetime import date

from expectations.bands import learned_band
from expectations.outcome import ValidationOutcome
from expectations.runner import validate

__all__ = ["validate_daily_oec", "HISTORY_DAYS"]

HISTORY_DAYS = 28
_UNBOUNDED = 1e18


def validate_daily_oec(warehouse: str, *, as_of: date, k: float = 4.0,
                       band: tuple[float, float] | None = None) -> tuple[ValidationOutcome | None, dict]:
    """Validate the newest complete day of ``marts.fct_daily_oec`` (the last date before ``as_of``).

    Its DAU must lie in the band learned from the ``HISTORY_DAYS`` days before it; revenue and
    revenue per active user must be non-negative and rates within [0, 1]. Returns the outcome
    (None when the mart has no complete day yet) and the figures used (for metadata). ``band``
    fixes the DAU band instead of learning it (a known range, or a test of the gate itself).
    """
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        rows = con.sql(
            "select * from marts.fct_daily_oec where date_day < ? order by date_day desc limit ?",
            params=[as_of, HISTORY_DAYS + 1],
        ).to_arrow_table()
    finally:
        con.close()
    if rows.num_rows == 0:
        return None, {"note": "no complete day in marts.fct_daily_oec yet"}
    newest = rows.slice(0, 1)
    history = rows["active_users"].to_pylist()[1:]
    band = band if band is not None else learned_band(list(reversed(history)), k=k)
    lo, hi = band if band is not None else (0.0, _UNBOUNDED)
    figures = {"date": str(newest["date_day"][0].as_py()), "active_users": newest["active_users"][0].as_py(),
               "band_low": lo, "band_high": hi if band is not None else None, "history_days": len(history)}
    return validate(newest, "fct_daily_oec", parameters={"dau_min": lo, "dau_max": hi}), figures
