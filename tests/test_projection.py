"""The Attribute Projection Language of pick and omit (ngsild/projection.py, clause 4.21)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, InvalidRequest
from stadsnav.ngsild.projection import (
    MAX_NESTING,
    WHOLE,
    Projection,
    Term,
    parse_omit,
    parse_pick,
    parse_terms,
)

CTX = Context.build()


def iri(name: str) -> str:
    return CTX.expand(name)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("temperature", (Term("temperature"),)),
        ("temperature,humidity", (Term("temperature"), Term("humidity"))),
        ("temperature|humidity", (Term("temperature"), Term("humidity"))),
        (
            "observation{temperature,humidity}",
            (Term("observation", (Term("temperature"), Term("humidity"))),),
        ),
        (
            "id, locatedAt{id|name,isInCountry{description}}",
            (
                Term("id"),
                Term(
                    "locatedAt",
                    (Term("id"), Term("name"), Term("isInCountry", (Term("description"),))),
                ),
            ),
        ),
    ],
)
def test_the_grammar_reads_the_examples_of_clause_4_21(text: str, terms: tuple[Term, ...]) -> None:
    assert parse_terms(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "id;name",
        "id,,name",
        "name||airQualityLevel",
        "|name",
        "name,",
        "id,locatedAt{name",
        "id,locatedAt{{name}",
        "id,locatedAt{,name}",
        "id,locatedAt{}",
        "locatedAt{name}}",
        "locatedAt{name}owner",
        "{name}",
        "name{a}{b}",
    ],
)
def test_malformed_projections_are_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_pick(text, CTX)
    with pytest.raises(BadRequestData):
        parse_omit(text, CTX)


@pytest.mark.parametrize("text", ["id{name}", "locatedAt{type{x}}", "createdAt", "value"])
def test_core_members_and_reserved_names_cannot_be_followed_or_projected(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_pick(text, CTX)


def test_nesting_is_bounded() -> None:
    deep = "a{" * MAX_NESTING + "b" + "}" * MAX_NESTING
    assert parse_pick(deep, CTX).depth == MAX_NESTING
    with pytest.raises(BadRequestData):
        parse_pick("a{" + deep + "}", CTX)


def test_pick_keeps_the_relationship_and_projects_the_entity_it_links_to() -> None:
    pick = parse_pick("id,locatedAt{id,name}", CTX)
    assert pick.keeps("id")
    assert pick.keeps(iri("locatedAt"))
    assert not pick.keeps("type")
    assert not pick.keeps(iri("name"))
    city = pick.follow(iri("locatedAt"))
    assert city.keeps("id")
    assert city.keeps(iri("name"))
    assert not city.keeps(iri("isInCountry"))
    assert pick.depth == 1
    # Without braces a Relationship's Linked Entity is shown whole.
    assert parse_pick("locatedAt", CTX).follow(iri("locatedAt")) == WHOLE


def test_omit_with_braces_removes_members_of_the_linked_entity_only() -> None:
    omit = parse_omit("type,locatedAt{name,isInCountry{description}}", CTX)
    assert not omit.keeps("type")
    assert omit.keeps(iri("locatedAt"))
    city = omit.follow(iri("locatedAt"))
    assert not city.keeps(iri("name"))
    assert city.keeps(iri("isInCountry"))
    country = city.follow(iri("isInCountry"))
    assert not country.keeps(iri("description"))
    assert country.keeps(iri("name"))
    assert omit.depth == 2


def test_user_terms_and_expanded_iris_name_the_same_attribute() -> None:
    user = Context.build([{"ex": "https://example.org/", "level": "ex:level"}])
    assert parse_pick("level", user) == parse_pick("https://example.org/level", user)
    assert parse_pick("level", user).keeps("https://example.org/level")


TEXT_CHARS = st.sampled_from([*"ab{},|; ", "id", "type", "x:y", "\u00e9", "{{", "}}"])


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=40), st.lists(TEXT_CHARS, max_size=30).map("".join)))
def test_any_text_either_parses_or_is_a_bad_request(text: str) -> None:
    for parse in (parse_pick, parse_omit):
        try:
            projection = parse(text, CTX)
        except (BadRequestData, InvalidRequest):
            continue
        assert isinstance(projection, Projection)


def terms() -> st.SearchStrategy[tuple[Term, ...]]:
    names = st.sampled_from(["a", "b", "c", "name", "ex:thing", "\u00e5tervinning"])
    leaf = st.builds(Term, names)
    tree = st.recursive(
        leaf,
        lambda inner: st.builds(Term, names, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        max_leaves=12,
    )
    return st.lists(tree, min_size=1, max_size=4).map(tuple)


def written(terms: tuple[Term, ...], separators: st.DataObject) -> str:
    parts = []
    for term in terms:
        text = term.name
        if term.linked is not None:
            text += "{" + written(term.linked, separators) + "}"
        parts.append(text)
    return "".join(
        part if i == 0 else separators.draw(st.sampled_from([",", "|"])) + part
        for i, part in enumerate(parts)
    )


@given(terms(), st.data())
def test_written_projections_read_back_as_written(
    expected: tuple[Term, ...], data: st.DataObject
) -> None:
    assert parse_terms(written(expected, data)) == expected


def projections() -> st.SearchStrategy[Projection]:
    text = terms().map(lambda ts: ",".join(_plain(t) for t in ts))
    return st.one_of(
        st.just(WHOLE),
        text.map(lambda t: parse_pick(t, CTX)),
        text.map(lambda t: parse_omit(t, CTX)),
    )


def _plain(term: Term) -> str:
    inner = "" if term.linked is None else "{" + ",".join(_plain(t) for t in term.linked) + "}"
    return term.name + inner


@given(projections(), projections())
def test_a_union_shows_exactly_what_either_projection_shows(
    first: Projection, second: Projection
) -> None:
    union = first.union(second)
    assert union == second.union(first)
    for member in ["id", "type", *(iri(n) for n in ("a", "b", "c", "name"))]:
        assert union.keeps(member) == (first.keeps(member) or second.keeps(member))
        kept_by = [p for p in (first, second) if p.keeps(member)]
        if len(kept_by) == 1:
            assert union.follow(member) == kept_by[0].follow(member)
