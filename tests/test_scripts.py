"""Every command the README and experiments/ document answers --help as written, from the repository root.

Python commands run in this process the way their interpreter would start them (`python -m M`: runpy with the
root on sys.path, as `-m` puts the working directory there; `python X.py`: the root script; console scripts:
their entry point), because a fresh interpreter per command would spend minutes importing torch, Lightning and
Gradio again. Shell scripts run in a subprocess.
"""

import re
import runpy
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# As the docs spell them, without their arguments.
DOCUMENTED = [
    "python train.py",
    "python evaluate.py",
    "colorize",
    "colorization-app",
    "python -m colorization.results",
    "python -m experiments.bench",
    "python -m experiments.bench gpu",
    "python -m experiments.bench colorize",
    "python -m experiments.bench fill",
    "python -m experiments.bench_train",
    "python -m experiments.load_app",
    "python -m experiments.bench_app_latency",
    "python -m experiments.train_reference",
    "python -m experiments.export_reference",
    "python -m experiments.photo_grid",
    "python -m experiments.plot_training_curves",
    "bash experiments/reference_gpu.sh",
]
NOT_RUN = {"bash .ci/install-browser.sh": "installs Chromium for the whole machine (CI)",
           "python -m venv": "the standard library's",
           "python -m pip": "pip's (installs the carried wheels on a lent GPU machine)"}
DOCS = ["README.md", "BENCHMARKS.md", "Makefile", "conf/**/*.yaml", "experiments/**/*.py", "experiments/**/*.md",
        "experiments/**/*.sh"]
# `python -m MODULE`, `python[3] PATH.py` or `bash PATH.sh`, each with what may follow (a bench section).
COMMAND = re.compile(r"\b(python3? -m [\w.]+(?: (?:gpu|colorize|fill)\b)?|python3? [\w./-]+\.py|bash [\w./-]+\.sh)")


def help_output(command: str, capsys, monkeypatch) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `command --help` started from the repository root."""
    words = shlex.split(command) + ["--help"]
    if words[0] == "bash":
        done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout + done.stderr
    monkeypatch.chdir(ROOT)
    try:
        if words[:2] == ["python", "-m"]:
            monkeypatch.setattr(sys, "argv", words[2:])
            monkeypatch.delitem(sys.modules, words[2], raising=False)  # as a fresh interpreter would find it
            runpy.run_module(words[2], run_name="__main__", alter_sys=True)
        elif words[0] == "python":
            monkeypatch.setattr(sys, "argv", words[1:])
            runpy.run_path(str(ROOT / words[1]), run_name="__main__")
        else:
            (entry_point,) = entry_points(group="console_scripts", name=words[0])
            monkeypatch.setattr(sys, "argv", words)
            entry_point.load()()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("command", DOCUMENTED)
def test_documented_command_answers_help(command, capsys, monkeypatch):
    code, output = help_output(command, capsys, monkeypatch)
    assert code == 0, output[-3000:]
    assert re.search(r"usage|powered by hydra", output, re.IGNORECASE), output[-3000:]


def test_the_docs_name_only_commands_tested_here():
    """A command the docs name but DOCUMENTED lacks (a renamed script, `python experiments/x.py` that cannot
    import its package) fails here, not in a reader's shell."""
    found = {}
    for pattern in DOCS:
        for path in ROOT.glob(pattern):
            for command in COMMAND.findall(path.read_text()):
                found.setdefault(command.replace("python3 ", "python "), path.relative_to(ROOT))
    untested = {command: str(path) for command, path in found.items() if command not in DOCUMENTED + list(NOT_RUN)}
    assert not untested


def test_the_fill_bench_times_both_scans(capsys):
    from experiments.bench_fill import main

    main(["--device", "cpu", "--batch", "1", "--size", "32", "--repeats", "1"])
    assert re.search(r"torch\.cumsum [\d.]+ ms, shifted additions [\d.]+ ms; cumsum / shifted additions [\d.]+",
                     capsys.readouterr().out)
