"""FHIRPath lowBoundary()/highBoundary() of partial dates, date-times and times (as
text): the earliest and latest instants the value can mean. A date-time without a
zone spans every zone (+14:00 to -12:00)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_jobs.sof.compiler import ViewCompileError


def _date(text: Column, *, low: bool) -> Column:
    year, month = F.substring(text, 1, 4), F.substring(text, 6, 2)
    if low:
        return (
            F.when(F.length(text) == 4, F.concat(year, F.lit("-01-01")))
            .when(F.length(text) == 7, F.concat(text, F.lit("-01")))
            .otherwise(F.substring(text, 1, 10))
        )
    month_end = F.date_format(
        F.last_day(F.to_date(F.concat(year, F.lit("-"), month, F.lit("-01")))), "yyyy-MM-dd"
    )
    return (
        F.when(F.length(text) == 4, F.concat(year, F.lit("-12-31")))
        .when(F.length(text) == 7, month_end)
        .otherwise(F.substring(text, 1, 10))
    )


def _time(text: Column, *, low: bool) -> Column:
    """hh:mm[:ss[.fff]] -> hh:mm:ss.fff at the boundary."""
    seconds, fraction = ("00", "000") if low else ("59", "999")
    return (
        F.when(F.length(text) == 5, F.concat(text, F.lit(f":{seconds}.{fraction}")))
        .when(F.length(text) == 8, F.concat(text, F.lit(f".{fraction}")))
        .otherwise(F.rpad(text, 12, "0" if low else "9"))
    )


def _date_time(text: Column, *, low: bool) -> Column:
    zone = F.regexp_extract(text, r"(Z|[+-]\d{2}:\d{2})$", 1)
    local = F.regexp_replace(text, r"(Z|[+-]\d{2}:\d{2})$", "")
    date_part = _date(F.substring_index(local, "T", 1), low=low)
    time_part = F.when(F.instr(local, "T") > 0, _time(F.substring_index(local, "T", -1), low=low)).otherwise(
        F.lit("00:00:00.000" if low else "23:59:59.999")
    )
    widest = F.lit("+14:00" if low else "-12:00")
    return F.concat(date_part, F.lit("T"), time_part, F.when(zone == "", widest).otherwise(zone))


def boundary(value: Column, system_type: str, *, low: bool) -> Column:
    if system_type == "Date":
        return _date(value, low=low)
    if system_type == "DateTime":
        return _date_time(value, low=low)
    if system_type == "Time":
        return _time(value, low=low)
    raise ViewCompileError(f"{'low' if low else 'high'}Boundary() of {system_type} is not supported")
