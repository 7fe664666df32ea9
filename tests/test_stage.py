"""How a stage ends: an error as one line and exit 2; Ctrl-C as exit 130 with a line that says what is true of the
stage (issue 30: represent said it would "resume from saved work", and it saves none)."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.params.all import defaults, render
from graphhash.params.graph import GraphParams
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.stage import run


def interrupted(**options) -> None:
    raise KeyboardInterrupt


def failing() -> None:
    raise GraphhashError("prepare.path: 'x' is not a folder\nsecond line")


def test_ctrl_c_says_whether_a_rerun_resumes(capsys):
    with pytest.raises(SystemExit) as info:
        run(interrupted, "represent gcn")
    assert info.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "interrupted: represent gcn left nothing half-written; rerun it to start over (it saves no partial work)"
    )
    with pytest.raises(SystemExit):
        run(interrupted, "extract", saves="the batches it embedded")
    assert capsys.readouterr().err.splitlines()[-1] == (
        "interrupted: extract left nothing half-written; rerun it to resume from the batches it embedded"
    )


def test_an_error_is_one_line_per_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        run(failing, "prepare")
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: prepare.path: 'x' is not a folder", "error: second line"]


def test_ctrl_c_in_the_represent_script_says_it_starts_over(tmp_path):
    """The real stage script, SIGINT once it is training: exit 130, its own line, nothing written."""
    n = 300
    x = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    train = np.arange(n) >= 20
    write_features(tmp_path / "features.h5", [{"image": x}], dims={"image": 16}, ids=[str(i) for i in range(n)],
                   labels=np.arange(n) % 3, masks={"query": ~train, "database": train, "train": train},
                   attrs={"backbone": "none"})  # fmt: skip
    values = defaults()
    values["codes"]["bits"] = [16]
    values["represent"]["steps"] = 1_000_000
    (tmp_path / "params.yaml").write_text(render(values))
    find_neighbours(tmp_path / "features.h5", GraphParams(), tmp_path / "neighbours.h5")
    script = [sys.executable, str(REPO / "stages" / "represent.py"), "--filter", "gcn", "--features", "features.h5",
              "--neighbours", "neighbours.h5", "--out", "out", "--models", "models", "--losses", "losses"]  # fmt: skip
    process = subprocess.Popen(script, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # the first epoch's line: it is training
        lines.append(line)
        if "represent: epoch" in line:
            break
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1].startswith("interrupted: represent gcn left nothing half-written; rerun it to "
                                                     "start over")  # fmt: skip
    assert not any((tmp_path / name).exists() for name in ("out", "models", "losses"))
