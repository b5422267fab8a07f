"""Validation of lesson parameters against their spec: what the API and CLI accept."""
import math

import pytest

from mpdash import lessons
from mpdash.lessons import Param, ParamError, validate_params


@pytest.fixture
def pool():
    return lessons.get("pool-map")


def test_defaults_when_nothing_sent(pool):
    assert validate_params(pool, None) == {p.name: p.default for p in pool.params}
    assert validate_params(pool, {})["workers"] == 3


def test_values_overlay_defaults(pool):
    values = validate_params(pool, {"workers": 5, "spin": 1})
    assert values["workers"] == 5 and values["spin"] == 1.0 and isinstance(values["spin"], float)


@pytest.mark.parametrize("params, field", [
    ({"workers": 0}, "workers"), ({"workers": 17}, "workers"), ({"workers": "3"}, "workers"),
    ({"workers": True}, "workers"), ({"workers": 2.5}, "workers"), ({"spin": math.nan}, "spin"),
    ({"spin": math.inf}, "spin"), ({"spin": -1}, "spin"), ({"start_method": "threads"}, "start_method"),
    ({"start_method": 1}, "start_method"), ({"nope": 1}, "nope"), ({"workers": None}, "workers"),
    ({"workers": [3]}, "workers"), ({"workers": {"a": 1}}, "workers"),
])
def test_bad_values_name_the_field(pool, params, field):
    with pytest.raises(ParamError, match=field):
        validate_params(pool, params)


@pytest.mark.parametrize("params", [[], "workers=3", 3, True])
def test_params_must_be_an_object(pool, params):
    with pytest.raises(ParamError, match="params"):
        validate_params(pool, params)


def test_whole_float_is_accepted_as_int(pool):
    assert validate_params(pool, {"workers": 4.0})["workers"] == 4


@pytest.mark.parametrize("lesson_id", [None, 3, "", "no-such-lesson", "../pool-map", ["pool-map"]])
def test_unknown_lesson(lesson_id):
    with pytest.raises(ParamError, match="unknown lesson"):
        lessons.get(lesson_id)


def test_bool_param():
    p = Param("flag", "bool", False, help="x")
    assert p.check(True) is True
    with pytest.raises(ParamError):
        p.check(1)


@pytest.mark.parametrize("text, value", [("4", 4), ("0.5", 0.5), ("spawn", "spawn")])
def test_cli_values_are_typed(pool, text, value):
    name = {4: "workers", 0.5: "spin", "spawn": "start_method"}[value]
    assert lessons.parse_cli_value(pool.param(name), text) == value


def test_cli_rejects_text_for_a_number(pool):
    with pytest.raises(ParamError, match="workers"):
        lessons.parse_cli_value(pool.param("workers"), "three")
