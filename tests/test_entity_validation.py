"""Property-based tests of entity validation and the expand/render round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import expand_entity
from stadsnav.ngsild.errors import BadRequestData, NgsiLdError
from stadsnav.ngsild.names import format_datetime, normalize_datetime, parse_datetime
from stadsnav.ngsild.render import Representation, render_entity

CTX = Context.build()
NOW = "2026-11-23T00:00:00.000000Z"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: (
        n
        not in {
            "id",
            "type",
            "scope",
            "value",
            "object",
            "datasetId",
            "observedAt",
            "createdAt",
            "modifiedAt",
            "deletedAt",
            "expiresAt",
        }
    )
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_arbitrary_json_is_accepted_or_refused_with_an_ngsild_error(
    payload: dict[str, Any],
) -> None:
    try:
        entity = expand_entity(payload, CTX, NOW)
    except NgsiLdError as error:
        status = error.status
    else:
        assert entity.id == payload.get("id")
        status = 201
    assert status in (400, 201)


@settings(max_examples=300)
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.dictionaries(names, json_values.filter(lambda v: v is not None), max_size=4),
)
def test_attributes_with_arbitrary_values_never_crash(
    base: dict[str, Any], attrs: dict[str, Any]
) -> None:
    payload = {**base, **attrs, "id": "urn:x:1", "type": "T"}
    try:
        expand_entity(payload, CTX, NOW)
        status = 201
    except NgsiLdError as error:
        status = error.status
    assert status in (400, 201)


properties = st.fixed_dictionaries(
    {"type": st.just("Property"), "value": json_values.filter(lambda v: v is not None)},
    optional={"unitCode": st.sampled_from(["CEL", "P1", "MTR"])},
)
relationships = st.fixed_dictionaries(
    {
        "type": st.just("Relationship"),
        "object": st.from_regex(r"urn:x:[a-z0-9]{1,8}", fullmatch=True),
    }
)


@settings(max_examples=200)
@given(st.dictionaries(names, properties | relationships, max_size=6))
def test_normalized_entities_round_trip_unchanged(attrs: dict[str, Any]) -> None:
    payload = {"id": "urn:x:1", "type": "Thing", **attrs}
    entity = expand_entity(payload, CTX, NOW)
    assert render_entity(entity, CTX, Representation()) == payload


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(["", ".1", ".123", ".123456", ".123456789"]),
    st.sampled_from(["Z", "+00:00", "+02:00", "-05:30"]),
)
def test_date_times_are_normalised_to_utc_microseconds(
    moment: datetime, fraction: str, zone: str
) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone
    try:
        expected = format_datetime(parse_datetime(text, "observedAt"))
    except BadRequestData:
        # Years at the ends of the calendar may leave it once the offset is applied.
        with pytest.raises(BadRequestData):
            normalize_datetime(text, "observedAt")
        return
    assert normalize_datetime(text, "observedAt") == expected
    assert expected.endswith("Z")
    assert len(expected) == len("2026-11-23T10:00:00.000000Z")


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "2026-11-23"],
)
def test_impossible_date_times_are_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData):
        normalize_datetime(text, "observedAt")


def test_an_attribute_type_that_is_not_a_string_is_bad_request_data() -> None:
    payload = {"id": "urn:a:1", "type": "T", "speed": {"type": ["Property"], "value": 1}}
    with pytest.raises(BadRequestData):
        expand_entity(payload, CTX, NOW)
