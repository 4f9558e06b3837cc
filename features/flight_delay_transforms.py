"""Python transforms of the flight_delay feature set (conf/features/flight_delay.yaml, ``transforms:``).

``lakeforge check`` finds ``@transform("name")`` here by parsing this file, without importing it;
the feature build imports it and calls the function on the Spark DataFrame.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lakeforge.errors import FeatureError
from lakeforge.features.registry import transform

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@transform("cyclic_hour")
def cyclic_hour(df: DataFrame, inputs: list[str], outputs: list[str], **params: Any) -> DataFrame:
    """An hour of day (0-23) as a point on the unit circle, so 23h and 0h end up close.

    ``outputs[0]`` = sin(2π·hour/24), ``outputs[1]`` = cos(2π·hour/24), from ``inputs[0]``.
    A null hour gives null outputs.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if len(inputs) != 1 or len(outputs) != 2:
        raise FeatureError(
            f"cyclic_hour takes 1 input (an hour 0-23) and gives 2 outputs (sin, cos); "
            f"got inputs {inputs}, outputs {outputs}"
        )
    angle = F.col(inputs[0]).cast("double") * (2 * math.pi / 24)
    return df.withColumn(outputs[0], F.sin(angle)).withColumn(outputs[1], F.cos(angle))


@transform("age_in_years")
def age_in_years(df: DataFrame, inputs: list[str], outputs: list[str], **params: Any) -> DataFrame:
    """Years between a build year (``inputs[0]``) and the event's year (``inputs[1]``, a timestamp).

    E.g. a plane's age at departure; a null or future build year gives null. ``timezone`` (an
    IANA name, default UTC) is the zone whose calendar year the event falls in.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if len(inputs) != 2 or len(outputs) != 1:
        raise FeatureError(
            f"age_in_years takes 2 inputs (build year, event time) and gives 1 output; "
            f"got inputs {inputs}, outputs {outputs}"
        )
    unknown = sorted(set(params) - {"timezone"})
    if unknown:
        raise FeatureError(f"age_in_years: unknown param(s) {', '.join(unknown)}; allowed: timezone")
    when = F.col(inputs[1])
    timezone = str(params.get("timezone") or "UTC")
    if timezone != "UTC":
        when = F.from_utc_timestamp(when, timezone)  # the session time zone is UTC
    age = F.year(when) - F.col(inputs[0])
    return df.withColumn(outputs[0], F.when(age >= 0, age))
