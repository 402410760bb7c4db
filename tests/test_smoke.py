import numpy as np

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack


def test_round_trip_scalars_and_frames(beamtime):
    db = Database(beamtime.path)
    runs = records.list_runs(db)
    assert [r.uid for r in runs] == [beamtime.uids["nexafs"], beamtime.uids["rsoxs"]]
    ev = records.stream_events(db, beamtime.uids["nexafs"], "primary")
    assert ev.columns["energy_position"] == [e["energy_position"] for e in beamtime.events["nexafs"]]
    uid = beamtime.uids["rsoxs"]
    fs = FrameStack(db.zarr_path, records.frame_refs(db, uid, "detector_image", "primary"))
    np.testing.assert_array_equal(fs[:], beamtime.frames["rsoxs"])


def test_the_api_reference_lists_every_public_name() -> None:
    import re
    from pathlib import Path

    import intake_resonance

    api = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. auto(?:class|function):: intake_resonance\.(\w+)$", api, flags=re.M))
    assert documented == set(intake_resonance.__all__) - {"__version__"}
