"""The q query language parser (ngsild/qlang.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, NgsiLdError, TooComplexQuery
from stadsnav.ngsild.qlang import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_TERMS,
    And,
    AttrPath,
    Comparison,
    Exists,
    NotExists,
    Or,
    Pattern,
    QExpr,
    Range,
    ValueList,
    matches_q,
    parse_q,
)

CTX = Context.build()
USER_CTX = Context.build([{"ex": "https://example.org/", "temp": "ex:temperature"}])


def iri(name: str) -> str:
    return CTX.expand(name)


def path(name: str, *subs: str, member: str | None = None, keys: tuple[str, ...] = ()) -> AttrPath:
    return AttrPath(iri(name), tuple(iri(s) for s in subs), member, keys)


# ---------------------------------------------------------------------------------------------
# Examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temperature", Exists(path("temperature"))),
        ("!temperature", NotExists(path("temperature"))),
        ("temperature==20", Comparison(path("temperature"), "==", 20)),
        ("temperature!=20", Comparison(path("temperature"), "!=", 20)),
        ("temperature>20.5", Comparison(path("temperature"), ">", 20.5)),
        ("temperature>=-3", Comparison(path("temperature"), ">=", -3)),
        ("temperature<1e3", Comparison(path("temperature"), "<", 1000.0)),
        ("temperature<=0", Comparison(path("temperature"), "<=", 0)),
        ("flag==true", Comparison(path("flag"), "==", True)),
        ("flag!=false", Comparison(path("flag"), "!=", False)),
        (
            'name=="Alpha"',
            Comparison(path("name"), "==", "Alpha", iri("Alpha")),
        ),
        (
            'name=="say \\"hi\\" \\\\ \\u00e9"',
            Comparison(path("name"), "==", 'say "hi" \\ é', iri('say "hi" \\ é')),
        ),
        ('name>"b"', Comparison(path("name"), ">", "b")),
        (
            "rel==urn:ngsi-ld:Building:1",
            Comparison(path("rel"), "==", "urn:ngsi-ld:Building:1"),
        ),
        (
            'rel=="urn:ngsi-ld:Building:1"',
            Comparison(path("rel"), "==", "urn:ngsi-ld:Building:1"),
        ),
        ("temperature==1..5", Range(path("temperature"), "==", 1, 5)),
        ("temperature!=1.5..2.5", Range(path("temperature"), "!=", 1.5, 2.5)),
        ('name=="a".."m"', Range(path("name"), "==", "a", "m")),
        (
            "d==2024-01-01T00:00:00Z..2024-12-31T00:00:00Z",
            Range(path("d"), "==", "2024-01-01T00:00:00Z", "2024-12-31T00:00:00Z"),
        ),
        ("a==1,2,3", ValueList(path("a"), "==", (1, 2, 3))),
        (
            'a!="x","y"',
            ValueList(path("a"), "!=", ("x", "y"), (iri("x"), iri("y"))),
        ),
        ("a==1,true", ValueList(path("a"), "==", (1, True))),
        ("name~=^Al.*", Pattern(path("name"), "~=", "^Al.*")),
        ("name!~=(?i)al(p|q)ha", Pattern(path("name"), "!~=", "(?i)al(p|q)ha")),
        ('name~="a|b\\"c\\d"', Pattern(path("name"), "~=", 'a|b"c\\d')),
        ("name~=[;)|]x", Pattern(path("name"), "~=", "[;)|]x")),
        (
            "temperature.accuracy>0.5",
            Comparison(path("temperature", "accuracy"), ">", 0.5),
        ),
        (
            "a.b.c==1",
            Comparison(path("a", "b", "c"), "==", 1),
        ),
        (
            "temperature.observedAt>=2024-01-01T00:00:00Z",
            Comparison(
                path("temperature", member="observedAt"), ">=", "2024-01-01T00:00:00.000000Z"
            ),
        ),
        (
            "temperature.accuracy.modifiedAt<2024-01-01T01:00:00+01:00",
            Comparison(
                path("temperature", "accuracy", member="modifiedAt"),
                "<",
                "2024-01-01T00:00:00.000000Z",
            ),
        ),
        (
            'temperature.unitCode=="CEL"',
            Comparison(path("temperature", member="unitCode"), "==", "CEL", iri("CEL")),
        ),
        ("temperature.datasetId", Exists(path("temperature", member="datasetId"))),
        (
            'address[city]=="Gent"',
            Comparison(path("address", keys=("city",)), "==", "Gent", iri("Gent")),
        ),
        (
            "address[street][number]==3",
            Comparison(path("address", keys=("street", "number")), "==", 3),
        ),
        (
            "address[street.number]==3",
            Comparison(path("address", keys=("street", "number")), "==", 3),
        ),
        (
            "a.b[Weird Key:1]",
            Exists(path("a", "b", keys=("Weird Key:1",))),
        ),
        (
            "a;b|c",
            Or((And((Exists(path("a")), Exists(path("b")))), Exists(path("c")))),
        ),
        (
            "a|b;c",
            Or((Exists(path("a")), And((Exists(path("b")), Exists(path("c")))))),
        ),
        (
            "(a|b);c",
            And((Or((Exists(path("a")), Exists(path("b")))), Exists(path("c")))),
        ),
        ("((a))", Exists(path("a"))),
        (
            " a == 1 ; ( b | !c ) ",
            And(
                (
                    Comparison(path("a"), "==", 1),
                    Or((Exists(path("b")), NotExists(path("c")))),
                )
            ),
        ),
        (
            "(name~=x|y);z",
            And((Or((Pattern(path("name"), "~=", "x"), Exists(path("y")))), Exists(path("z")))),
        ),
        ("n==99999999999999999999", Comparison(path("n"), "==", 1e20)),
    ],
)
def test_examples(text: str, expected: QExpr) -> None:
    assert parse_q(text, CTX) == expected


def test_names_expand_with_the_given_context() -> None:
    expr = parse_q("temp>1;ex:other.ex:sub", USER_CTX)
    assert expr == And(
        (
            Comparison(AttrPath("https://example.org/temperature"), ">", 1),
            Exists(AttrPath("https://example.org/other", ("https://example.org/sub",))),
        )
    )


def test_vocab_values_expand_with_the_context() -> None:
    expr = parse_q("category==ex:shop", USER_CTX)
    assert expr == Comparison(
        AttrPath(USER_CTX.expand("category")), "==", "ex:shop", "https://example.org/shop"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "a=",
        "a=1",
        "a==",
        "a>",
        "==1",
        "a==1;",
        ";a",
        "a|",
        "a||b",
        "(a",
        "a)",
        "()",
        "a==(1)",
        "!a==1",
        "!(a)",
        "a==1 2",
        'a=="unterminated',
        'a=="bad \\q escape"',
        'a=="\\u12"',
        'a=="\\ud800"',
        "a>true",
        "a<=false",
        "a>1..5",
        "a==1..",
        "a==1..5..7",
        'a==1.."x"',
        "a==true..false",
        "a>1,2",
        "a==1,",
        "a==,1",
        "a~=",
        "a~=(",
        "a~=[",
        "a~=x)y",
        "a~=(?P<n>x)",
        "a~=(?s)x",
        "a~=x(?i)",
        'a~="unterminated',
        "a.",
        "a..b",
        "a[",
        "a[]",
        "a[k",
        "a[k].b",
        "a.observedAt.b",
        "a.observedAt[k]",
        "a[k.]",
        "a b",
        'a"b"',
        "a==1)",
        "a\x00",
        "a==\ud800",
        "a==1e999",
        "a=!1",
    ],
)
def test_bad_syntax_is_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_q(text, CTX)


def test_limits_are_too_complex_query() -> None:
    with pytest.raises(TooComplexQuery):
        parse_q("a" * (MAX_LENGTH + 1), CTX)
    with pytest.raises(TooComplexQuery):
        parse_q("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), CTX)
    with pytest.raises(TooComplexQuery):
        parse_q(";".join(["a"] * (MAX_TERMS + 1)), CTX)
    with pytest.raises(TooComplexQuery):
        parse_q("a==" + ",".join(["1"] * 1100), CTX)
    # Right at the limits it parses.
    parse_q("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH, CTX)
    parse_q(";".join(["a"] * MAX_TERMS), CTX)


def test_deep_nesting_never_recurses_out_of_bounds() -> None:
    for text in ("(" * 5000, "(" * 2000 + "a" + ")" * 2000, "a~=" + "(" * 2000 + ")" * 2000):
        with pytest.raises(NgsiLdError):
            parse_q(text, CTX)


def test_non_string_is_rejected() -> None:
    with pytest.raises(BadRequestData):
        parse_q(123, CTX)  # type: ignore[arg-type]


def test_errors_say_where() -> None:
    with pytest.raises(BadRequestData) as info:
        parse_q("temperature>20;humidity=", CTX)
    assert "position 23" in info.value.detail


# ---------------------------------------------------------------------------------------------
# matches_q on small attribute maps (the SQL agreement is tested in test_qsql.py)

T = "2024-01-01T00:00:00.000000Z"


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "createdAt": T, "modifiedAt": T, **extra}


ATTRS = {
    iri("temperature"): [prop(21.5, observedAt="2024-01-01T10:00:00.000000Z"), prop(10)],
    iri("name"): [prop("Alpha")],
    iri("tags"): [prop(["a", 1, True])],
    iri("category"): [{"type": "VocabProperty", "vocab": iri("shop"), "createdAt": T}],
}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("temperature", True),
        ("!temperature", False),
        ("humidity", False),
        ("!humidity", True),
        ("temperature==10", True),
        ("temperature>21", True),
        ("temperature>30", False),
        ("temperature!=10", True),  # the other instance differs
        ('temperature=="10"', False),
        ("temperature.observedAt==2024-01-01T10:00:00Z", True),
        ("temperature.observedAt<2024-01-01", False),
        ("tags==1", True),
        ("tags==true", True),
        ('tags!="a"', False),
        ("tags~=^a$", True),
        ("tags>0", True),
        ("name~=^A", True),
        ("name!~=^A", False),
        ("category==shop", True),
        ("category!=shop", False),
        ('category=="' + iri("shop") + '"', True),
        ("category==mall,shop", True),
        ("humidity!=1", False),
        ("temperature==1,2|name==Alpha", True),
        ("temperature==1,2;name==Alpha", False),
    ],
)
def test_matches_q(text: str, result: bool) -> None:
    assert matches_q(parse_q(text, CTX), ATTRS) is result


def test_matches_q_survives_odd_documents() -> None:
    odd: dict[str, Any] = {
        iri("a"): {"not": "a list"},
        iri("b"): ["not an instance", {"type": ["weird"], "value": 1}],
        iri("c"): [{"type": "Property"}],
    }
    for text in ("a", "a==1", "b==1", "b.x", "c", "c==1", "c!=1", "b[k]"):
        matches_q(parse_q(text, CTX), odd)
    assert matches_q(parse_q("b==1", CTX), odd)
    assert not matches_q(parse_q("c", CTX), odd)


# ---------------------------------------------------------------------------------------------
# Properties

QCHARS = st.sampled_from([*'abc.[]()!=<>~;|,"\\ 019-:eTZ', "..", "==", "\u00e9"])


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(QCHARS, max_size=40).map("".join)))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    try:
        expr = parse_q(text, CTX)
    except NgsiLdError:
        return
    # Whatever parses can be evaluated.
    matches_q(expr, ATTRS)


NAMES = ["temperature", "name", "status", "tags", "address", "label", "count", "ex:thing"]
SUBS = ["accuracy", "provider"]
MEMBERS = ["observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"]
KEYS = ["city", "street", "en", "nl", "Mixed Key", "k-1"]
PATTERNS = ["^A", "a$", "(?i)^b", "e", "[0-9]", "^(open|closed)$", "x|y", "\\d+"]

Built = tuple[str, QExpr]


@st.composite
def paths(draw: st.DrawFn) -> tuple[str, AttrPath]:
    name = draw(st.sampled_from(NAMES))
    subs = draw(st.lists(st.sampled_from(SUBS), max_size=2))
    text = ".".join([name, *subs])
    member = None
    keys: tuple[str, ...] = ()
    tail = draw(st.sampled_from(["none", "member", "keys"]))
    if tail == "member":
        member = draw(st.sampled_from(MEMBERS))
        text += "." + member
    elif tail == "keys":
        keys = tuple(draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)))
        if draw(st.booleans()):
            text += "".join(f"[{k}]" for k in keys)
        else:
            text += "[" + ".".join(keys) + "]"
    return text, AttrPath(CTX.expand(name), tuple(CTX.expand(s) for s in subs), member, keys)


numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: abs(f) < 1e300),
)
strings = st.text(alphabet=st.sampled_from(list('abcXYZ é"\\;|,()[].=<>!~')), max_size=8)


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def vocab_of(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    expanded = CTX.expand(value)
    return expanded if expanded != value else None


@st.composite
def terms(draw: st.DrawFn) -> Built:
    text, p = draw(paths())
    kind = draw(st.sampled_from(["exists", "not", "cmp", "eq", "list", "range", "pattern"]))
    if kind == "exists":
        return text, Exists(p)
    if kind == "not":
        return "!" + text, NotExists(p)
    if kind == "cmp":
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        value: Any = draw(st.one_of(numbers, strings))
        return f"{text}{op}{render(value)}", Comparison(p, op, value)
    eq = draw(st.sampled_from(["==", "!="]))
    if kind == "eq":
        value = draw(st.one_of(numbers, strings, st.booleans()))
        return f"{text}{eq}{render(value)}", Comparison(p, eq, value, vocab_of(value))
    if kind == "list":
        values = draw(st.lists(st.one_of(numbers, strings, st.booleans()), min_size=2, max_size=4))
        vocab = tuple(dict.fromkeys(v for x in values if (v := vocab_of(x)) is not None))
        return (
            f"{text}{eq}{','.join(render(v) for v in values)}",
            ValueList(p, eq, tuple(values), vocab),
        )
    if kind == "range":
        low, high = draw(st.one_of(st.tuples(numbers, numbers), st.tuples(strings, strings)))
        return f"{text}{eq}{render(low)}..{render(high)}", Range(p, eq, low, high)
    pattern = draw(st.sampled_from(PATTERNS))
    op = draw(st.sampled_from(["~=", "!~="]))
    quoted = '"' + pattern.replace('"', '\\"') + '"'
    shown = quoted if "|" in pattern or draw(st.booleans()) else pattern
    return f"{text}{op}{shown}", Pattern(p, op, pattern)


def combine(children: st.SearchStrategy[Built]) -> st.SearchStrategy[Built]:
    def build(args: tuple[bool, list[Built]]) -> Built:
        is_and, parts = args
        texts = [f"({t})" if isinstance(e, And | Or) else t for t, e in parts]
        exprs = tuple(e for _, e in parts)
        if is_and:
            return ";".join(texts), And(exprs)
        return "|".join(texts), Or(exprs)

    return st.tuples(st.booleans(), st.lists(children, min_size=2, max_size=3)).map(build)


expressions = st.recursive(terms(), combine, max_leaves=8)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.booleans())
def test_generated_expressions_round_trip(built: Built, wrap: bool) -> None:
    text, expected = built
    if wrap:
        text = f"( {text} )"
    assert parse_q(text, CTX) == expected
    matches_q(expected, ATTRS)
