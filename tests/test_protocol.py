"""The run protocol (mpdash/protocol.py) is the one definition both sides of a run use.

(a) docs/API.md's "Inside a run" section names every message kind; (b) the in-run side sends
only kinds (and traced event kinds) that the protocol defines, always through its constants,
and never spells an environment name or a message dict itself. The scan reads the sources, so
it also fails if the calls it looks for are no longer found (it cannot pass vacuously).
"""
from __future__ import annotations

import ast
import os
import re

from mpdash import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INRUN_DIR = os.path.join(ROOT, "mpdash", "inrun")
INRUN_SOURCES = sorted(
    [os.path.join(INRUN_DIR, n) for n in os.listdir(INRUN_DIR) if n.endswith(".py")]
    + [os.path.join(ROOT, "mpdash", "harness.py"),
       os.path.join(ROOT, "mpdash", "_boot", "sitecustomize.py")])


def _inside_a_run_section() -> str:
    with open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("## Inside a run")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_api_docs_name_every_kind_and_point_to_the_protocol_module():
    section = _inside_a_run_section()
    assert "mpdash/protocol.py" in section
    missing = [k for k in protocol.KINDS if not re.search(rf"`{k}\b", section)]
    assert not missing, f"docs/API.md 'Inside a run' does not name {missing}"
    for name in (protocol.ENV_EVENTS, protocol.ENV_SERVER_PID, protocol.ENV_RUN_ID,
                 protocol.ENV_RUN_MAIN, protocol.ENV_ENGINE, protocol.ENV_PACKAGE):
        assert f"`{name}`" in section


def test_api_docs_list_every_traced_event_kind():
    with open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8") as f:
        text = f.read()
    table = text[text.index("#### Events emitted by tracing"):]
    table = table[:table.index("\n### ")]
    missing = [k for k in protocol.TRACED_EVENTS if f"`{k}`" not in table]
    assert not missing


def _protocol_constant(node) -> str | None:
    """The name NAME of ``protocol.NAME``, else None."""
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "protocol"):
        return node.attr
    return None


def _calls(tree, module: str, names: tuple):
    """Calls ``module.name(...)`` for each name in ``names`` (and bare ``name(...)`` when
    ``module`` is the scanned file itself)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in names
                and isinstance(func.value, ast.Name) and func.value.id == module):
            yield node
        elif isinstance(func, ast.Name) and func.id in names and module == "":
            yield node


def _parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def test_the_in_run_side_sends_only_protocol_kinds_through_protocol_constants():
    sends, events = [], []
    for path in INRUN_SOURCES:
        tree = _parse(path)
        where = os.path.relpath(path, ROOT)
        for call in _calls(tree, "channel", ("send",)):
            assert call.args, f"{where}:{call.lineno}: channel.send() without a kind"
            name = _protocol_constant(call.args[0])
            assert name is not None, f"{where}:{call.lineno}: kind is not a protocol constant"
            kind = getattr(protocol, name)
            assert kind in protocol.KINDS, f"{where}:{call.lineno}: {kind!r} is not a kind"
            sends.append((where, kind))
            if kind == protocol.EVENT:
                for kw in call.keywords:
                    if kw.arg == "kind" and _protocol_constant(kw.value):
                        events.append(getattr(protocol, _protocol_constant(kw.value)))
        # the traced families send events through budget.emit/trace/count(KIND, ...)
        for call in _calls(tree, "budget", ("emit", "trace", "count")):
            name = _protocol_constant(call.args[0]) if call.args else None
            assert name is not None, f"{where}:{call.lineno}: event kind is not a protocol constant"
            events.append(getattr(protocol, name))
    sent = {kind for _, kind in sends}
    # Every kind the in-run side is responsible for is sent from somewhere: nothing vacuous.
    assert sent == set(protocol.KINDS), set(protocol.KINDS) - sent
    assert len(sends) >= 14, sends
    assert set(events) <= set(protocol.TRACED_EVENTS)
    assert set(events) == set(protocol.TRACED_EVENTS), set(protocol.TRACED_EVENTS) - set(events)
    assert len(events) >= 15, events


BOOT = os.path.join(ROOT, "mpdash", "_boot", "sitecustomize.py")


def test_the_in_run_side_spells_no_message_dict_or_environment_name():
    for path in INRUN_SOURCES:
        tree = _parse(path)
        where = os.path.relpath(path, ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
                assert "k" not in keys, f"{where}:{node.lineno}: a message dict built by hand"
            if path == BOOT:   # it runs before mpdash can be imported: see the next test
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "MPDASH_" not in node.value, f"{where}:{node.lineno}: {node.value!r}"


def test_sitecustomize_spells_the_protocols_environment_names():
    """It loads the package, so it cannot import the protocol: its two literals must match."""
    tree = _parse(BOOT)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            for target, value in zip(node.targets[0].elts, node.value.elts):
                names[target.id] = value.value
    assert names == {"ENV_EVENTS": protocol.ENV_EVENTS, "ENV_PACKAGE": protocol.ENV_PACKAGE}
    with open(BOOT, encoding="utf-8") as f:
        literals = set(re.findall(r'"(MPDASH_[A-Z_]+)"', f.read()))
    assert literals == set(names.values())


def test_a_message_round_trips_and_an_event_carries_its_own_kind():
    msg = protocol.message(protocol.EVENT, 42, 1.5, kind=protocol.QUEUE_PUT, channel="Queue-1")
    line = protocol.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line[:-1]) == {"k": "event", "pid": 42, "t": 1.5, "kind": "queue_put",
                                          "channel": "Queue-1"}
    assert protocol.decode(b"[1]") is None and protocol.decode(b"{nope") is None
