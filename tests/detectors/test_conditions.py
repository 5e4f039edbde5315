"""Rule-tag conditions (``detectors/conditions.py``): what parses, what it means on an example,
and what is refused, with the position and what was expected; hostile input included."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from detectors.conditions import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LENGTH,
    AllOf,
    AnyOf,
    Compare,
    ConditionError,
    Const,
    Field,
    Member,
    Not,
    Truth,
    compare,
    null_test,
    parse,
)

EXAMPLE: dict[str, Any] = {
    "features": {
        "amount": 600,
        "country": "BR",
        "score": 0.25,
        "vip": True,
        "notes": None,
        "tags": ["a", "b"],
        "my col": "x",
        "prediction": "a feature named so",
    },
    "segment": {"channel": "mobile", "region west": "yes"},
    "prediction": 0.95,
    "label": 1,
    "correct": False,
    "error": 1.0,
}


def holds(text: str, example: dict[str, Any] | None = None) -> bool:
    return parse(text).holds(EXAMPLE if example is None else example)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the brief's examples
        ('amount > 500 and country == "BR"', True),
        ('segment.channel == "mobile" or label == 1', True),
        ("prediction >= 0.9 and not correct", True),
        # each comparison
        ("amount == 600", True),
        ("amount == 600.0", True),
        ("amount != 600", False),
        ("amount < 600", False),
        ("amount <= 600", True),
        ("amount > 599.5", True),
        ("amount >= 601", False),
        ("score < 0.3", True),
        ("score < -1", False),
        ("-1 < score", True),
        ("amount > 5e2", True),
        ("amount < 1E3", True),
        ("score == .25", True),
        ("score == +0.25", True),
        ('country < "CA"', True),  # strings order as strings
        ("country == 'BR'", True),
        ('country != "FR"', True),
        # and / or / not and precedence: and binds tighter than or
        ("amount > 1000 or amount > 500 and country == 'BR'", True),
        ("(amount > 1000 or amount > 500) and country == 'FR'", False),
        ("amount > 1000 or country == 'FR' and amount > 1", False),
        ("not amount > 1000", True),
        ("not not amount > 1000", False),
        ("not (amount > 500 and country == 'BR')", False),
        ("((((amount == 600))))", True),
        # fields
        ("feature.amount == 600", True),
        ('feature["my col"] == "x"', True),
        ("feature.prediction == 'a feature named so'", True),
        ("prediction == 0.95", True),
        ("segment.channel == 'mobile'", True),
        ("segment['region west'] == 'yes'", True),
        ("label == 1", True),
        ("label == true", False),  # a number is not a boolean
        ("error >= 1", True),
        ("correct == false", True),
        ("correct", False),
        ("not correct", True),
        ("vip", True),
        ("vip == true and not (vip != true)", True),
        ("amount", False),  # a field alone holds only when it is the boolean true
        # in / not in
        ("country in ['BR', 'AR']", True),
        ("country in ['FR', 'DE',]", False),
        ("country not in ['FR', 'DE']", True),
        ("amount in [1, 600]", True),
        ("amount in []", False),
        ("amount not in []", True),
        ("label in [0, 1]", True),
        # missing and null
        ("missing > 1", False),
        ("missing == 1", False),
        ("missing != 1", False),  # a missing feature compares false, != too
        ("missing in [1, 2]", False),
        ("missing not in [1, 2]", False),
        ("missing == null", True),
        ("missing != null", False),
        ("missing in [null]", True),
        ("notes == null", True),  # a JSON null reads as null
        ("notes > 0", False),
        ("amount != null", True),
        ("null == null", True),
        ("null != null", False),
        ("1 == null", False),
        ("null != 1", True),
        ("notes == missing", False),  # two null fields: a null side, false
        ("notes != missing", False),
        ("amount not in [1, null]", True),
        ("notes not in [1, null]", False),
        ("segment.nothing == null and feature.nothing == null", True),
        ("not missing > 1", True),  # not negates what it is given
        ("tags != null", True),
        # mixed kinds: false, never an error
        ("country > 5", False),
        ("country == 5", False),
        ("country != 5", False),
        ("amount == '600'", False),
        ("amount < 'z'", False),
        ("vip == 1", False),  # a boolean is not a number
        ("vip > false", False),  # booleans only == and !=
        ("tags == 'a'", False),
        ("tags > 1", False),
        ("prediction > label", False),  # 0.95 > 1
        ("prediction < label", True),
        # escapes in strings
        (r'"a\"b" == "a\"b"', True),
        ("'it\\'s' == \"it's\"", True),
        (r'"\\" != "\n"', True),
        # keywords spelled inside names are names
        ("android == null and orchid == null and notes == null", True),
    ],
)
def test_what_a_condition_means(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_the_tree() -> None:
    tree = parse("a > 1 and (b == 'x' or not c) and d in [1, null] and e not in ['y']").tree
    assert tree == AllOf(
        (
            Compare(Field("feature", "a"), ">", Const(1)),
            AnyOf(
                (
                    Compare(Field("feature", "b"), "==", Const("x")),
                    Not(Truth(Field("feature", "c"))),
                )
            ),
            Member(Field("feature", "d"), (1, None), negated=False),
            Member(Field("feature", "e"), ("y",), negated=True),
        )
    )
    assert parse("segment.k == 1").tree == Compare(Field("segment", "k"), "==", Const(1))
    assert parse("correct").tree == Truth(Field("correct"))
    assert parse("2 > 1").tree == Compare(Const(2), ">", Const(1))
    assert isinstance(parse("1.0 == 1").tree, Compare)
    # chains stay flat: a long 'and' is no deeper than a short one
    long = " and ".join(f"f{i} > 0" for i in range(40))
    tree = parse(long).tree
    assert isinstance(tree, AllOf) and len(tree.parts) == 40
    assert parse("  amount\t>\n1  ").text == "  amount\t>\n1  "


def test_odd_examples_never_raise() -> None:
    odd: list[dict[str, Any]] = [
        {},
        {"features": None, "segment": "not a map"},
        {"features": [1, 2], "segment": [], "prediction": {"a": 1}, "label": [0.1, 0.9]},
        {"features": {"amount": float("nan")}, "prediction": float("inf")},
        {"features": {"amount": 10**400}},
    ]
    conditions = [
        "amount > 1",
        "amount == null",
        "segment.a != 'x'",
        "prediction > 0.5",
        "label in [1, 'a', null, true]",
        "not correct",
        "prediction == label",
        "amount < 1e300",
    ]
    for example in odd:
        for text in conditions:
            assert isinstance(holds(text, example), bool)
    assert not holds("amount > 1", {"features": {"amount": float("nan")}})
    assert not holds("amount != 1", {"features": {"amount": float("nan")}})
    assert holds("amount > 1e300", {"features": {"amount": 10**400}})
    assert holds("amount == null", {"features": None})


def test_compare_directly() -> None:
    assert compare("<", 1, 2.5) and not compare("<", "1", 2)
    assert not compare("==", None, None) and not compare("!=", None, 1)  # null: false
    assert not compare("!=", [1], None)
    assert null_test("==", None) and null_test("!=", [1]) and not null_test("<", None)
    assert not compare("==", [1], [1])  # lists are never compared
    assert not compare("<", True, False) and compare("!=", True, False)


def error_of(text: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        parse(text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a condition"),
        ("   ", 3, "a condition"),
        ("amount >", 8, "a field"),
        ("amount > > 1", 9, "a field"),
        ("amount = 1", 7, "'=='"),
        ("amount ! 1", 7, "'!='"),
        ("a && b", 2, "'and'"),
        ("a || b", 2, "'or'"),
        ("a > 1 b", 6, "'and', 'or' or the end"),
        ("a > 1 and", 9, "a field"),
        ("and a", 0, "a field"),
        ("(a > 1", 6, "')'"),
        ("a > 1)", 5, "'and', 'or' or the end"),
        ("()", 1, "a condition inside the parentheses"),
        ("5", 1, "a comparison"),
        ("'x'", 3, "a comparison"),
        ("true", 4, "a comparison"),
        ("a in 1", 5, "'['"),
        ("a in [1, 2", 10, "',' or ']'"),
        ("a in [1 2]", 8, "',' or ']'"),
        ("a in [b]", 6, "a value"),
        ("a in [[1]]", 6, "a value"),
        ("a not 1", 6, "'in' after 'not'"),
        ("segment == 1", 8, "'.' or '['"),
        ("segment.", 8, "a name after 'segment.'"),
        ("feature[1] == 1", 8, "a quoted name"),
        ("feature['x' == 1", 12, "']'"),
        ('"open', 0, 'a closing "'),
        ("'open", 0, "a closing '"),
        (r"'bad \q'", 5, "an escape"),
        ("a > 1.2.3", 7, "a space or an operator"),
        ("a > 12abc", 6, "a space or an operator"),
        ("a > 1e", 6, "the exponent's digits"),
        ("a > 1e999", 4, "a finite number"),
        ("a > -", 4, "a name, a value"),
        ("a > #", 4, "a name, a value"),
        ("a > 1 AND b > 2", 6, "'and', 'or' or the end"),
        ("correct == True", 11, "lowercase 'true'"),
        ("label == None", 9, "lowercase 'null'"),
        ("NOT correct", 0, "lowercase 'not'"),
        ("a ≥ 1", 2, "a name, a value"),
        ("amount > 1;", 10, "a name, a value"),
    ],
)
def test_refused_with_where_and_what(text: str, position: int, expected: str) -> None:
    exc = error_of(text)
    assert exc.position == position, (text, str(exc))
    assert expected in exc.expected, (text, str(exc))
    assert str(exc).startswith(f"at position {position}: expected ")


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('touch /tmp/driftline-pwned')",
        "exec('import os')",
        "eval('1')",
        "open('/etc/passwd').read()",
        "().__class__.__bases__[0].__subclasses__()",
        "amount.__class__ == 1",
        "lambda: 1",
        "[x for x in range(10)]",
        "amount > 1; import os",
        "amount > 1 if True else 0",
        "f'{amount}' == 1",
        "amount + 1 > 2",
        "amount * 2 > 2",
        "a[0] > 1",
        "getattr(a, 'b')",
        "`ls`",
        "$(ls)",
        "amount > 1 -- comment",
        "amount > 1 /* comment */",
        "1 == 1 or sleep(5)",
        "segment.channel == 'x' union select 1",
    ],
)
def test_code_is_never_run(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the parser called eval/exec/compile/__import__")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    with pytest.raises(ConditionError):
        parse(text)


def test_bare_names_that_look_like_code_are_only_features() -> None:
    # a name alone is a feature read from the example, nothing more
    for text in ("__import__", "os", "system", "__class__ == null", "eval"):
        condition = parse(text)
        assert isinstance(condition.holds(EXAMPLE), bool)
    assert parse("__import__").tree == Truth(Field("feature", "__import__"))
    assert holds("__import__", {"features": {"__import__": True}})


def test_bounds_of_length_depth_and_lists() -> None:
    at_limit = "a == " + "1" * (MAX_LENGTH - 5)
    assert len(at_limit) == MAX_LENGTH and parse(at_limit)
    exc = error_of(at_limit + "1")
    assert exc.position == MAX_LENGTH and str(MAX_LENGTH) in exc.expected
    huge = error_of("a > 1 and " * 100_000 + "a > 1")
    assert huge.position == MAX_LENGTH
    deepest = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse(deepest).tree == Truth(Field("feature", "a"))
    exc = error_of("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert exc.position == MAX_DEPTH and "levels" in exc.expected
    assert parse("not " * MAX_DEPTH + "a")
    assert "levels" in error_of("not " * (MAX_DEPTH + 1) + "a").expected
    mixed = "(not " * 17 + "a" + ")" * 17  # 34 levels
    assert "levels" in error_of(mixed).expected
    # deep nesting up to the length bound never overflows the stack
    for opener in ("(", "not ", "(not "):
        text = opener * (MAX_LENGTH // len(opener))
        assert isinstance(error_of(text[:MAX_LENGTH]), ConditionError)
    items = ", ".join(str(i) for i in range(MAX_ITEMS))
    assert parse(f"amount in [{items}]")
    exc = error_of(f"amount in [{items}, 1]")
    assert str(MAX_ITEMS) in exc.expected


def test_long_numbers_and_strings_inside_the_bound() -> None:
    digits = "9" * 400
    assert holds(f"amount < {digits}")
    assert holds(f"{digits} > amount")
    text = "x" * 400
    assert holds(f"country != '{text}'")


@pytest.mark.parametrize("junk", ["\x00", "\u202e", "\ud800", "\\", "\n\n\n", "{}", "@", "?"])
def test_junk_characters_are_refused_or_harmless(junk: str) -> None:
    try:
        condition = parse(f"a == 1 {junk}")
    except ConditionError as exc:
        assert exc.position >= 7
    else:  # whitespace only
        assert condition.holds(EXAMPLE) is False
