"""A watched program is shown as a program (issue 12): after a lesson was shown, a program run by
``watch`` gets its own header (its command line and folder), its own source in the code panel
(never the lesson's code, explanation or predict question) and findings that describe it; the
next lesson run brings the lesson back. And the interpreter a lesson runs on is chosen in the
page (data-testid="python-select", from GET /api/system ``pythons``)."""
from __future__ import annotations

import os
import shutil
import sys

import pytest
import requests

from mpdash.runs import PROJECT_ROOT
from tests.browser.conftest import start, wait_state

pytestmark = pytest.mark.browser

SCRIPTS = os.path.join(PROJECT_ROOT, "tests", "scripts")


def _shown_finished(page, run_id):
    """The page shows that run, and shows it finished (not the state of the run shown before)."""
    page.wait_for_function("""id => window.mpdash.store.selectedRun === id
        && window.mpdash.store.runs.get(id)?.state === "finished"
        && document.querySelector('[data-testid=run-state]').textContent.trim() === "finished"
        """, arg=run_id, timeout=30_000)


def _text(page, testid):
    return page.text_content(f'[data-testid="{testid}"]').strip()


def test_a_watched_program_is_shown_as_a_program(page, dashboard, tmp_path):
    start(page, "queue")                       # a lesson, with its code and its question
    assert wait_state(page) == "finished"
    lesson_code = _text(page, "code")
    assert page.locator('[data-testid="predict"]').is_visible()
    assert page.locator('[data-testid="run-command"]').is_hidden()

    # The program from its own folder, as `cd that-folder && mpdash watch -- python pool_map.py`.
    folder = tmp_path / "my project"
    folder.mkdir()
    script = folder / "pool_map.py"
    shutil.copy(os.path.join(SCRIPTS, "pool_map.py"), script)
    run = dashboard.engine.start_command([sys.executable, "pool_map.py"], cwd=str(folder),
                                         title="python pool_map.py")
    dashboard.engine.wait(run.id, timeout=30)
    _shown_finished(page, run.id)

    header = page.locator('[data-testid="run-command"]')
    assert header.is_visible()
    assert _text(page, "run-command-line") == f"$ {sys.executable} pool_map.py"
    assert _text(page, "run-command-cwd") == f"in {folder}"
    assert page.text_content("#lesson-title").strip() == "python pool_map.py"
    assert page.text_content("#lesson-section").strip() == "watched program"

    # Its own source, read from disk when it started; the path shown.
    page.wait_for_selector(f'#code[data-source="{script}"]')
    assert _text(page, "code") == script.read_text().strip() != lesson_code
    assert _text(page, "code-path") == str(script)
    assert page.locator('[data-testid="explanation"]').is_hidden()
    assert page.locator('[data-testid="predict"]').is_hidden()
    assert _text(page, "explanation") == "" and _text(page, "predict") == ""

    # Findings about the program, the engine's, from this run.
    data = requests.get(f"{page.url.rstrip('/')}/api/runs/{run.id}", timeout=10).json()
    keys = [f["key"] for f in data["findings"]]
    assert keys[:2] == ["processes", "ends"] and "tasks_per_worker" in keys
    for finding in data["findings"]:
        shown = page.locator(f'[data-testid="finding-{finding["key"]}"]')
        assert shown.text_content().strip() == finding["text"]
    assert "4 processes" in data["findings"][0]["text"]   # the main and Pool(3)'s workers
    assert "measures nothing" not in _text(page, "findings")

    # The next lesson run: the lesson's header, code and question again. Picking the lesson
    # shows its last run (finished) at first: wait for the new one before reading its state.
    seen = page.evaluate("() => [...window.mpdash.store.runs.keys()]")
    start(page, "queue")
    page.wait_for_function("seen => !seen.includes(window.mpdash.store.selectedRun)", arg=seen)
    assert wait_state(page) == "finished"
    assert header.is_hidden()
    assert _text(page, "code") == lesson_code
    assert page.locator('[data-testid="predict"]').is_visible()
    assert page.locator('[data-testid="code-path"]').is_hidden()


def test_a_command_without_a_python_file_says_so(page, dashboard):
    run = dashboard.engine.start_command(["sh", "-c", "echo hi"])
    dashboard.engine.wait(run.id, timeout=30)
    _shown_finished(page, run.id)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=code-path]').textContent.includes('no Python file')")
    assert _text(page, "code") == ""
    assert page.locator('[data-testid="predict"]').is_hidden()


def test_a_dash_c_program_shows_its_string_as_its_source(page, dashboard):
    run = dashboard.engine.start_command([sys.executable, "-c", "import os\nprint('hi', os.getpid())"])
    dashboard.engine.wait(run.id, timeout=30)
    _shown_finished(page, run.id)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=code-path]').textContent.includes('python -c')")
    assert "print('hi', os.getpid())" in _text(page, "code")
    assert page.get_attribute('[data-testid="code"]', "data-source") == "-c"
    assert page.locator('[data-testid="predict"]').is_hidden()


def test_the_python_a_lesson_runs_on_is_chosen_in_the_page(page, live_server):
    system = requests.get(f"{live_server}/api/system", timeout=30).json()
    pythons = system.get("pythons")
    if not pythons or len(pythons) < 2:
        pytest.skip("GET /api/system lists no other interpreter (pythons, issue 12 part A)")
    select = page.locator('[data-testid="python-select"]')
    select.wait_for(state="visible")
    assert select.locator("option").evaluate_all("os => os.map(o => o.value)") == \
        [p["id"] for p in pythons]
    other = next(p for p in pythons if p["id"] != "server")
    select.select_option(other["id"])
    start(page, "process-target")
    assert wait_state(page) == "finished"
    run_id = page.evaluate("() => window.mpdash.store.selectedRun")
    run = requests.get(f"{live_server}/api/runs/{run_id}", timeout=10).json()
    assert run["python"]["version"] == other["version"]
    assert run["python"]["executable"] == other["executable"] or \
        os.path.realpath(run["python"]["executable"]) == os.path.realpath(other["executable"])
