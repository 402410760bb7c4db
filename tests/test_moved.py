"""Module paths from before the layer folders still import, as the very same modules."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import pytest

from intake_resonance._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module(old):
    before = importlib.import_module(f"intake_resonance.{MOVED[old]}")
    assert importlib.import_module(f"intake_resonance.{old}") is before
    assert before.__spec__.name == f"intake_resonance.{MOVED[old]}"  # the alias did not restamp it


def test_old_paths_in_a_fresh_interpreter():
    # Imported first by the old path (nothing imported the new one yet), then by the new.
    code = (
        "from intake_resonance.facade import Catalog\n"
        "from intake_resonance.dataset import open_run_dataset\n"
        "import intake_resonance.tiled.streams as old_streams\n"
        "from intake_resonance import records\n"
        "import intake_resonance.faces.facade as facade\n"
        "import intake_resonance.faces.tiled.streams as streams\n"
        "from intake_resonance.beamtime import records as new_records\n"
        "from intake_resonance.datasets.open import open_run_dataset as o2\n"
        "assert Catalog is facade.Catalog and old_streams is streams and records is new_records and open_run_dataset is o2\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_objects_pickle_by_their_new_path():
    from intake_resonance.errors import RunNotFoundError

    err = RunNotFoundError("no run has this uid", "bt.db", run="abc")
    assert type(pickle.loads(pickle.dumps(err))).__module__ == "intake_resonance.beamtime.errors"


def test_unknown_submodule_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("intake_resonance.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("intake_resonance.tiled.no_such_module")
