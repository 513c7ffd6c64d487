"""Property-based tests of entity validation and the expand/render round trip."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import expand_entity
from stadsnav.ngsild.errors import NgsiLdError
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
