"""The temporal side of NGSI-LD, free of I/O: temporal queries (clause 4.11), durations, the
temporal, simplified (temporalValues) and aggregated representations (4.5.7, 4.5.9, 4.5.19).

Times are handled in stadsnav's canonical text form (UTC, microseconds, a trailing Z), which
sorts like the times it stands for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import PROPERTY, VALUE_KEY, Instance
from stadsnav.ngsild.errors import BadRequestData, OperationNotSupported
from stadsnav.ngsild.names import format_datetime, normalize_datetime, parse_datetime
from stadsnav.ngsild.query import TypeAnd, TypeExpr, TypeName, TypeOr
from stadsnav.ngsild.render import Representation, render_instance

TimeRel = Literal["before", "after", "between"]
TimeProperty = Literal["observedAt", "createdAt", "modifiedAt"]
TIMERELS = ("before", "after", "between")
TIMEPROPERTIES = ("observedAt", "createdAt", "modifiedAt")
AGGR_METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
EPOCH = "1970-01-01T00:00:00.000000Z"
# The member of the simplified temporal representation holding each attribute type's pairs.
TEMPORAL_VALUES_KEY = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
    "JsonProperty": "jsons",
}


# -- durations (ISO 8601, as aggrPeriodDuration and retention use them) -------------------------

_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?!$)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """A duration: whole calendar months (years are twelve) plus a fixed length of time."""

    months: int = 0
    seconds: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.seconds == 0

    def after(self, moment: datetime, times: int = 1) -> datetime:
        """The moment `times` durations after `moment` (months first, then the fixed part)."""
        if self.months:
            moment = _add_months(moment, self.months * times)
        return moment + timedelta(seconds=self.seconds * times)


def parse_duration(text: str, what: str = "aggrPeriodDuration") -> Duration:
    """An ISO 8601 duration such as PT1H, P1D, P1M, P2Y or P1DT12H; "0" is a zero duration."""
    if text == "0":
        return Duration()
    match = _DURATION.match(text) if len(text) <= 64 else None
    if match is None:
        raise BadRequestData(f"{what} must be an ISO 8601 duration such as PT1H, got {text!r:.100}")
    years, months, weeks, days, hours, minutes, seconds = match.groups()
    total_months = int(years or 0) * 12 + int(months or 0)
    fixed = (
        int(weeks or 0) * 604_800
        + int(days or 0) * 86_400
        + int(hours or 0) * 3_600
        + int(minutes or 0) * 60
        + float(seconds or 0)
    )
    if total_months > 120_000 or fixed > 3.2e12:
        raise BadRequestData(f"{what} is too long: {text!r:.100}")
    return Duration(total_months, fixed)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    days_in_month = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, days_in_month[month]))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# -- temporal queries (clause 4.11) -------------------------------------------------------------


@dataclass(frozen=True)
class TimeQuery:
    """timerel/timeAt/endTimeAt/timeproperty; `timerel` None means the whole history."""

    timerel: TimeRel | None = None
    time_at: str | None = None
    end_time_at: str | None = None
    timeproperty: TimeProperty = "observedAt"

    def matches(self, moment: str) -> bool:
        if self.timerel == "before":
            return moment < str(self.time_at)
        if self.timerel == "after":
            return moment >= str(self.time_at)
        if self.timerel == "between":
            return str(self.time_at) <= moment < str(self.end_time_at)
        return True


def parse_time_query(
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
    *,
    required: bool,
) -> TimeQuery:
    """Parse the temporal query of clause 4.11 (bounds: before is exclusive of timeAt, after
    inclusive, between [timeAt, endTimeAt)); `required` for Query Temporal Evolution."""
    prop = timeproperty or "observedAt"
    if prop == "deletedAt":
        raise OperationNotSupported("timeproperty=deletedAt is not supported")
    if prop not in TIMEPROPERTIES:
        raise BadRequestData(
            f"timeproperty must be observedAt, createdAt or modifiedAt, got {prop!r:.100}"
        )
    if timerel is None:
        if required:
            raise BadRequestData("A temporal query needs timerel (before, after or between)")
        if time_at is not None or end_time_at is not None:
            raise BadRequestData("timeAt and endTimeAt need timerel")
        return TimeQuery(timeproperty=prop)  # type: ignore[arg-type]
    if timerel not in TIMERELS:
        raise BadRequestData(f"timerel must be before, after or between, got {timerel!r:.100}")
    if time_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    start = normalize_datetime(time_at, "timeAt")
    end = None
    if timerel == "between":
        if end_time_at is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        end = normalize_datetime(end_time_at, "endTimeAt")
        if end <= start:
            raise BadRequestData("endTimeAt must be later than timeAt")
    elif end_time_at is not None:
        raise BadRequestData("endTimeAt is only allowed with timerel=between")
    return TimeQuery(timerel, start, end, prop)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HistoryScan:
    """Which history rows a temporal request reads; None means no restriction."""

    time: TimeQuery = TimeQuery()
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    # The types an entity's (first) type must be one of.
    types: frozenset[str] | None = None
    attrs: tuple[str, ...] | None = None
    # "@none" stands for the default instance (no datasetId).
    datasets: frozenset[str] | None = None


def single_type_names(expr: TypeExpr) -> frozenset[str]:
    """The types an entity of one type may have to match a type expression (history keeps
    one type per entity: its first)."""
    if isinstance(expr, TypeName):
        return frozenset({expr.iri})
    sets = [single_type_names(p) for p in expr.parts]
    if isinstance(expr, TypeAnd):
        return frozenset.intersection(*sets)
    assert isinstance(expr, TypeOr)
    return frozenset.union(*sets)


@dataclass(frozen=True)
class AggregateSeries:
    """The aggregated values of one attribute (one datasetId) of one entity: per method the
    JSON text of [[value, startAt, endAt], ...] (times in the short form the API shows), so
    that a long series goes from the store to the response without Python touching each
    period."""

    entity_id: str
    attr: str
    dataset_id: str | None
    kind: str
    results: dict[str, str]


@dataclass(frozen=True)
class AggregatePage:
    """The series of one aggregated answer; `content_range` (start, stop), canonical times,
    when periods after `stop` were left for the next request."""

    series: list[AggregateSeries]
    content_range: tuple[str, str] | None = None


def parse_aggr_methods(text: str | None) -> tuple[str, ...]:
    if text is None:
        raise BadRequestData("aggregatedValues needs aggrMethods")
    methods = tuple(dict.fromkeys(m.strip() for m in text.split(",")))
    for method in methods:
        if method not in AGGR_METHODS:
            raise BadRequestData(f"Unknown aggregation method {method!r:.100}")
    return methods


@dataclass(frozen=True)
class Aggregation:
    methods: tuple[str, ...]
    period: Duration = Duration()
    # The most periods per attribute one answer holds (the server's temporal_max_instances).
    most_periods: int = 1_000_000


def instance_time(instance: Instance, prop: str, observed_at: str) -> str:
    """The time of a history instance by a timeproperty (observedAt: the row's time)."""
    if prop == "observedAt":
        return observed_at
    return str(instance.get(prop, observed_at))


# -- aggregation (clause 4.5.19), the reference both stores agree with -------------------------


def bucket_origin(time: TimeQuery) -> str:
    """Periods start at timeAt for after and between, else at the Unix epoch (whole UTC
    hours, days and calendar months)."""
    if time.timerel in ("after", "between") and time.time_at is not None:
        return time.time_at
    return EPOCH


def whole_range(time: TimeQuery, first: str, last: str) -> tuple[str, str]:
    """The one period of an aggregation without aggrPeriodDuration: the query's interval,
    closed by the first or last instance where the query leaves it open."""
    start = time.time_at if time.timerel in ("after", "between") else first
    if time.timerel == "between":
        end = time.end_time_at
    elif time.timerel == "before":
        end = time.time_at
    else:
        end = last
    return str(start), str(end)


@dataclass(frozen=True)
class PeriodWindow:
    """The periods one aggregated answer covers: `edges` are their starts followed by the end
    of the last, `texts` the same in the API's short form. `more_after` (canonical) is where
    rows may be left for a later request: None when the periods reach the end of the query's
    range."""

    edges: list[datetime]
    texts: list[str]
    more_after: str | None
    range_start: str

    @property
    def start(self) -> str:
        return format_datetime(self.edges[0])

    @property
    def stop(self) -> str:
        return format_datetime(self.edges[-1])


def period_window(time: TimeQuery, period: Duration, first: datetime, most: int) -> PeriodWindow:
    """The periods from the one holding `first` (the earliest selected instance), at most
    `most` of them, not going past the end of the query's range."""
    origin = parse_datetime(bucket_origin(time), "time")
    count = bucket_index(first, origin, period)
    end_text = range_end(time)
    end = parse_datetime(end_text, "time") if end_text is not None else None
    edges = [period.after(origin, count)]
    while (end is None or edges[-1] < end) and len(edges) <= most:
        edges.append(period.after(origin, count + len(edges)))
    whole = end is not None and edges[-1] >= end
    texts = [_short(format_datetime(e)) for e in edges]
    start = time.time_at if time.timerel in ("after", "between") else None
    return PeriodWindow(
        edges,
        texts,
        None if whole else format_datetime(edges[-1]),
        str(start or format_datetime(edges[0])),
    )


def range_end(time: TimeQuery) -> str | None:
    """The exclusive end of a temporal query's range (None: open)."""
    if time.timerel == "between":
        return time.end_time_at
    if time.timerel == "before":
        return time.time_at
    return None


def aggregated_json(triples: list[list[Any]]) -> str:
    """[[value, startAt, endAt], ...] (canonical times) as the JSON text the API shows."""
    return orjson.dumps([[v, _short(s), _short(e)] for v, s, e in triples]).decode()


def bucket_start(moment: str, origin: str, period: Duration) -> str:
    """The start of the period holding `moment`, counting periods from `origin`."""
    return bucket(moment, origin, period)[0]


def bucket(moment: str, origin: str, period: Duration) -> tuple[str, str]:
    """The period [origin + k periods, origin + k+1 periods) holding `moment`."""
    at = parse_datetime(moment, "time")
    base = parse_datetime(origin, "time")
    count = bucket_index(at, base, period)
    return format_datetime(period.after(base, count)), format_datetime(
        period.after(base, count + 1)
    )


def bucket_index(at: datetime, base: datetime, period: Duration) -> int:
    """k such that origin + k periods <= at < origin + k+1 periods."""
    if period.months == 0:
        return math.floor((at - base) / timedelta(seconds=period.seconds))
    months = (at.year - base.year) * 12 + at.month - base.month
    # An estimate in whole periods, corrected against the calendar.
    count = months // period.months if period.months else 0
    if period.seconds:
        approx = period.months * 30.436875 * 86400 + period.seconds
        count = math.floor((at - base).total_seconds() / approx)
    while period.after(base, count) > at:
        count -= 1
    while period.after(base, count + 1) <= at:
        count += 1
    return count


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_of(instance: Instance) -> Any:
    return instance.get(VALUE_KEY.get(instance.get("type", PROPERTY), "value"))


def _distinct_key(value: Any) -> Any:
    if is_number(value):
        return float(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def aggregate_values(values: Sequence[Any], method: str) -> Any:
    """One method over the values of one period; None when it does not apply to them."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({_distinct_key(v) for v in values})
    numbers = [float(v) for v in values if is_number(v)]
    if method in ("min", "max"):
        if numbers:
            return min(numbers) if method == "min" else max(numbers)
        texts = [v for v in values if isinstance(v, str)]
        if not texts:
            return None
        return min(texts) if method == "min" else max(texts)
    if not numbers:
        return None
    if method == "sum":
        return math.fsum(numbers)
    if method == "sumsq":
        return math.fsum(n * n for n in numbers)
    mean = math.fsum(numbers) / len(numbers)
    if method == "avg":
        return mean
    # stddev: the sample standard deviation (0 for a single value).
    if len(numbers) < 2:
        return 0.0
    return math.sqrt(math.fsum((n - mean) ** 2 for n in numbers) / (len(numbers) - 1))


Series = list[tuple[str, Any]]  # (time, value), oldest first
Aggregated = dict[str, list[list[Any]]]  # method -> [[value, startAt, endAt], ...]


def aggregate_series(series: Series, aggregation: Aggregation, time: TimeQuery) -> Aggregated:
    """The aggregated values of one attribute (one datasetId) of one entity."""
    out: Aggregated = {m: [] for m in aggregation.methods}
    if not series:
        return out
    periods: dict[tuple[str, str], list[Any]] = {}
    if aggregation.period.is_zero:
        periods[whole_range(time, series[0][0], series[-1][0])] = [v for _, v in series]
    else:
        origin = bucket_origin(time)
        for moment, value in series:
            periods.setdefault(bucket(moment, origin, aggregation.period), []).append(value)
    for (start, end), values in sorted(periods.items()):
        for method in aggregation.methods:
            result = aggregate_values(values, method)
            if result is not None:
                out[method].append([result, start, end])
    return out


# -- representations ----------------------------------------------------------------------------

Format = Literal["normalized", "concise", "temporalValues", "aggregatedValues"]


@dataclass(frozen=True)
class HistoryInstance:
    """One stored instance of an attribute, with its instance id."""

    attr: str
    dataset_id: str | None
    observed_at: str
    instance_id: str
    instance: Instance


def render_temporal(
    entity_id: str,
    types: list[str],
    instances: Sequence[HistoryInstance],
    ctx: Context,
    rep: Representation,
    fmt: Format,
    time: TimeQuery,
) -> dict[str, Any]:
    """The temporal (4.5.7), concise or simplified temporal (4.5.9) representation."""
    out = _head(entity_id, types, ctx)
    by_attr: dict[str, list[HistoryInstance]] = {}
    for item in instances:
        by_attr.setdefault(item.attr, []).append(item)
    for attr, items in by_attr.items():
        name = ctx.compact(attr)
        if fmt == "temporalValues":
            out[name] = _temporal_values(items, ctx, time)
            continue
        shown = []
        for item in items:
            body = render_instance(item.instance, ctx, rep)
            if not isinstance(body, dict):
                body = {"value": body}
            body["instanceId"] = item.instance_id
            shown.append(body)
        out[name] = shown
    return out


def _head(entity_id: str, types: list[str], ctx: Context) -> dict[str, Any]:
    names = [ctx.compact(t) for t in types]
    return {"id": entity_id, "type": names[0] if len(names) == 1 else names}


def _temporal_values(items: list[HistoryInstance], ctx: Context, time: TimeQuery) -> Any:
    by_dataset: dict[str | None, list[HistoryInstance]] = {}
    for item in items:
        by_dataset.setdefault(item.dataset_id, []).append(item)
    shown = []
    for dataset, group in by_dataset.items():
        kind = group[-1].instance.get("type", PROPERTY)
        body: dict[str, Any] = {"type": kind}
        key = TEMPORAL_VALUES_KEY.get(kind, "values")
        body[key] = [
            [
                _plain_value(i.instance, ctx),
                _short(instance_time(i.instance, time.timeproperty, i.observed_at)),
            ]
            for i in group
        ]
        if dataset is not None:
            body["datasetId"] = dataset
        shown.append(body)
    return shown[0] if len(shown) == 1 else shown


def _plain_value(instance: Instance, ctx: Context) -> Any:
    kind = instance.get("type", PROPERTY)
    value = value_of(instance)
    if kind == "VocabProperty":
        return [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(value)
    return value


def render_aggregated(
    entity_id: str,
    types: list[str],
    attrs: dict[str, dict[str | None, tuple[str, dict[str, str]]]],
    ctx: Context,
) -> dict[str, Any]:
    """The aggregated temporal representation (4.5.19): per attribute (and datasetId) each
    method as [[value, startAt, endAt], ...], given as JSON text (see AggregateSeries)."""
    out = _head(entity_id, types, ctx)
    for attr, datasets in attrs.items():
        shown = []
        for dataset, (kind, results) in datasets.items():
            body: dict[str, Any] = {"type": kind}
            for method, text in results.items():
                body[method] = orjson.Fragment(text)
            if dataset is not None:
                body["datasetId"] = dataset
            shown.append(body)
        out[ctx.compact(attr)] = shown[0] if len(shown) == 1 else shown
    return out


def _short(moment: str) -> str:
    return moment[:-8] + "Z" if moment.endswith(".000000Z") else moment


def now_text() -> str:
    return format_datetime(datetime.now(UTC))
