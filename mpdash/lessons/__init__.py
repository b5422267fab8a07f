"""The lesson catalog: one module per lesson, discovered at import time.

A lesson module holds top-level worker functions (picklable under every start method), a
``main(ctx, **params)`` that reads like the tutorial's ``if __name__ == "__main__":`` block, and,
last in the file, one frozen ``LESSON = Lesson(...)`` spec. The page shows the module's source
up to that spec: exactly the code that runs.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import math
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Param", "Lesson", "ParamError", "catalog", "get", "validate_params", "parse_cli_value"]

log = logging.getLogger(__name__)

PARAM_TYPES = ("int", "float", "bool", "choice")
START_METHODS = ("fork", "spawn", "forkserver")


class ParamError(ValueError):
    """A lesson id or parameter the client sent is not acceptable; the message names the field."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    unit: str | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name, "type": self.type, "default": self.default,
            "min": self.min, "max": self.max,
            "choices": list(self.choices) if self.choices else None,
            "unit": self.unit, "help": self.help,
        }

    def check(self, value: Any) -> Any:
        """Return ``value`` if it fits this parameter, else raise ParamError naming it."""
        name = self.name
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ParamError(f"param '{name}' must be true or false")
            return value
        if self.type == "choice":
            if not isinstance(value, str) or value not in (self.choices or ()):
                raise ParamError(f"param '{name}' must be one of {', '.join(self.choices or ())}")
            return value
        # bool is an int subclass in Python; true is not a number of workers.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"param '{name}' must be a number")
        if self.type == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise ParamError(f"param '{name}' must be a whole number")
                value = int(value)
        else:
            # A JSON integer of 400 digits is a Python int that float() cannot hold.
            if isinstance(value, int) and not -1e308 < value < 1e308:
                raise ParamError(f"param '{name}' must be a finite number")
            if not math.isfinite(value):
                raise ParamError(f"param '{name}' must be a finite number")
            value = float(value)
        if self.min is not None and value < self.min:
            raise ParamError(f"param '{name}' must be at least {self.min:g}")
        if self.max is not None and value > self.max:
            raise ParamError(f"param '{name}' must be at most {self.max:g}")
        return value


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    section: str            # the tutorial's section number, "3" .. "11"
    section_title: str
    summary: str            # one line for the catalog
    explanation: str        # what it shows and why, in our words
    predict: str            # the question to ask the class before pressing Run
    main: Callable[..., Any]
    params: tuple[Param, ...] = ()
    # Optional server-side analysis: analyze(run) -> list of Finding dicts, from the run's own
    # metrics and events (for numbers only the sampler sees, such as peak CPU of a phase).
    analyze: Callable[[Any], list] | None = None
    order: int = 0          # position within its section
    module: str = field(default="", compare=False)

    @property
    def code(self) -> str:
        return lesson_source(self.module)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def to_json(self) -> dict:
        return {
            "id": self.id, "title": self.title, "section": self.section,
            "section_title": self.section_title, "summary": self.summary,
            "explanation": self.explanation, "predict": self.predict,
            "params": [p.to_json() for p in self.params], "code": self.code,
        }


def lesson_source(module_name: str) -> str:
    """The module's source up to its spec: the code that runs in the lesson's processes.

    The spec part starts at ``from mpdash...`` (the import of Lesson, and any server-side
    ``analyze``) or, failing that, at ``LESSON = Lesson(``.
    """
    source = inspect.getsource(importlib.import_module(module_name))
    cuts = [i for i in (source.find("\nfrom mpdash"), source.find("\nLESSON = Lesson(")) if i >= 0]
    return (source[:min(cuts)] if cuts else source).rstrip() + "\n"


def start_method_param(default: str = "fork") -> Param:
    return Param("start_method", "choice", default, choices=START_METHODS,
                 help="how multiprocessing creates each child: fork copies this process, "
                      "spawn starts a fresh interpreter, forkserver forks from a clean server")


_catalog: dict[str, Lesson] | None = None


def catalog() -> dict[str, Lesson]:
    """Every lesson that imports cleanly, by id, in tutorial order. A broken one is logged."""
    global _catalog
    if _catalog is None:
        found = []
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_"):
                continue
            name = f"{__name__}.{info.name}"
            try:
                spec = importlib.import_module(name).LESSON
                if not isinstance(spec, Lesson):
                    raise TypeError("LESSON is not a Lesson")
                object.__setattr__(spec, "module", name)
                found.append(spec)
            except Exception:  # a broken lesson must never take the catalog down
                log.exception("lesson module %s left out", name)
        found.sort(key=lambda l: (int(l.section), l.order, l.id))
        _catalog = {l.id: l for l in found}
    return _catalog


def get(lesson_id: Any) -> Lesson:
    if not isinstance(lesson_id, str) or lesson_id not in catalog():
        raise ParamError(f"unknown lesson {str(lesson_id)[:64]!r}")
    return catalog()[lesson_id]


def validate_params(lesson: Lesson, raw: Any) -> dict:
    """Defaults overlaid with the client's values, every one checked against the spec."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamError("'params' must be an object")
    values = {p.name: p.default for p in lesson.params}
    for name, value in raw.items():
        param = lesson.param(name) if isinstance(name, str) else None
        if param is None:
            raise ParamError(f"unknown param {str(name)[:64]!r} for lesson '{lesson.id}'")
        values[name] = param.check(value)
    return values


def parse_cli_value(param: Param, text: str) -> Any:
    """Turn the text of ``--param k=v`` into the parameter's type (then ``check`` bounds it)."""
    try:
        if param.type == "int":
            return int(text)
        if param.type == "float":
            return float(text)
        if param.type == "bool":
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
    except ValueError:
        raise ParamError(f"param '{param.name}' must be {param.type}, got {text!r}") from None
    return text
