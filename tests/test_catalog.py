"""One contract test over every discovered lesson: what the page and the CLI rely on."""
from __future__ import annotations

import importlib
import inspect
import re

import pytest

from mpdash import lessons

CONTRACT_IDS = {
    "process-target", "process-subclass", "threads-vs-processes", "queue", "pipe",
    "shared-memory", "race-condition", "pool-map", "daemon", "crash-isolation", "process-costs",
    # §12 "When it goes wrong" (issue 13)
    "queue-deadlock", "main-guard", "pickling", "globals-not-shared", "fork-with-threads",
    "pool-overhead",
}
PITFALLS = [l for l in lessons.catalog().values() if l.section == "12"]
ALL = list(lessons.catalog().values())


def test_catalog_has_every_contract_lesson_in_tutorial_order():
    assert CONTRACT_IDS <= set(lessons.catalog())
    sections = [int(lesson.section) for lesson in ALL]
    assert sections == sorted(sections)


@pytest.mark.parametrize("lesson", ALL, ids=[l.id for l in ALL])
def test_metadata(lesson):
    assert re.fullmatch(r"[a-z][a-z0-9-]*", lesson.id)
    assert lesson.title and lesson.summary and lesson.section_title
    assert 3 <= int(lesson.section) <= 12
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", lesson.explanation.strip()) if len(s) > 15]
    assert len(sentences) >= 3, lesson.explanation
    assert lesson.predict.strip().endswith("?") or "?" in lesson.predict
    json_form = lesson.to_json()
    assert set(json_form) == {"id", "title", "section", "section_title", "summary",
                              "explanation", "predict", "params", "code"}


@pytest.mark.parametrize("lesson", ALL, ids=[l.id for l in ALL])
def test_params_are_bounded_and_defaults_valid(lesson):
    names = [p.name for p in lesson.params]
    assert len(names) == len(set(names))
    for p in lesson.params:
        assert p.type in lessons.PARAM_TYPES and p.help
        if p.type in ("int", "float"):
            assert p.min is not None and p.max is not None, p.name
            assert p.min <= p.default <= p.max, p.name
            assert isinstance(p.default, int if p.type == "int" else float), p.name
        if p.type == "choice":
            assert p.choices and p.default in p.choices
        if p.type == "bool":
            assert isinstance(p.default, bool)
        assert p.check(p.default) == p.default
    assert lessons.validate_params(lesson, {}) == {p.name: p.default for p in lesson.params}
    # main accepts exactly the parameters the spec declares
    signature = inspect.signature(lesson.main)
    assert list(signature.parameters)[1:] == names
    for p in lesson.params:
        assert signature.parameters[p.name].default == p.default, p.name


@pytest.mark.parametrize("lesson", ALL, ids=[l.id for l in ALL])
def test_start_method_choice_where_processes_are_made(lesson):
    if "Process" in lesson.code or "Pool" in lesson.code:
        param = lesson.param("start_method")
        if param is None:
            # The start method is the lesson's subject (fork-with-threads): then the code
            # names it where the process is made, rather than offer a choice it would ignore.
            assert re.search(r"get_context\(", lesson.code), lesson.id
        else:
            assert set(param.choices) == {"fork", "spawn", "forkserver"}


def test_when_it_goes_wrong_has_the_six_pitfalls_last():
    assert [l.id for l in PITFALLS] == ["queue-deadlock", "main-guard", "pickling",
                                        "globals-not-shared", "fork-with-threads",
                                        "pool-overhead"]
    assert list(lessons.catalog())[-len(PITFALLS):] == [l.id for l in PITFALLS]
    assert {l.section_title for l in PITFALLS} == {"When it goes wrong"}


@pytest.mark.parametrize("lesson", PITFALLS, ids=[l.id for l in PITFALLS])
def test_pitfall_is_switched_by_fixed(lesson):
    # fixed=false (the default) shows the pitfall; fixed=true the documented fix
    assert lesson.params[0].name == "fixed"
    assert lesson.params[0].type == "bool" and lesson.params[0].default is False
    assert lesson.main.__code__.co_varnames[1] == "fixed"


@pytest.mark.parametrize("lesson", ALL, ids=[l.id for l in ALL])
def test_code_is_the_source_that_runs(lesson):
    module = importlib.import_module(lesson.module)
    source = inspect.getsource(module)
    assert source.startswith(lesson.code.rstrip())
    assert inspect.getsource(lesson.main) in lesson.code
    for name, obj in vars(module).items():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ \
                and obj is not lesson.analyze and inspect.getsource(obj) not in lesson.code:
            # Only the analysis (after the spec) may use a function the class is not shown.
            assert not re.search(rf"\b{name}\b", lesson.code), f"{name} runs but is not shown"
    # Plain multiprocessing, like the tutorial: no instrumentation in what the class reads.
    assert "from multiprocessing import" in lesson.code
    assert "mpdash" not in lesson.code
    assert not re.search(r"\b(probe|tracing|inrun|channel|budget)\.", lesson.code)
