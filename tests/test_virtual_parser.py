"""ResonanceParser: a run through VirtualiZarr's own parser protocol, read and combined like any virtual dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

vz = pytest.importorskip("virtualizarr")
icechunk = pytest.importorskip("icechunk")

from obspec_utils.registry import ObjectStoreRegistry  # noqa: E402
from obstore.store import LocalStore  # noqa: E402

from intake_resonance import open_run_dataset  # noqa: E402
from intake_resonance.beamtime import records  # noqa: E402
from intake_resonance.beamtime.errors import NotVirtualizableError  # noqa: E402
from intake_resonance.beamtime.format import Database  # noqa: E402
from intake_resonance.beamtime.store import BeamtimeStore  # noqa: E402
from intake_resonance.tools.demo import write_demo  # noqa: E402
from intake_resonance.virtual.chunks import store_url_prefix  # noqa: E402
from intake_resonance.virtual.parser import ResonanceParser  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is currently not part in the Zarr format 3 specification")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), frame_shape=(16, 16))


def _registry() -> ObjectStoreRegistry:
    return ObjectStoreRegistry({"file://": LocalStore()})


def test_the_manifest_store_of_every_demo_run_reads_as_our_engine_gives_it(demo):
    with Database(demo) as db:
        pairs = [(u, s.name) for u in records.list_uids(db) for s in records.list_streams(db, u)]
    for uid, stream in pairs:
        parser = ResonanceParser(uid[:8], stream)
        store = parser(demo.resolve().as_uri(), _registry())
        got = xr.open_zarr(store, consolidated=False, zarr_format=3)
        xr.testing.assert_identical(got.load(), open_run_dataset(demo, uid, stream).load())
        assert set(parser.loadable_variables) == {str(v) for v in got.variables if got[v].ndim < 3}


def test_open_virtual_dataset_combines_runs_and_writes_them_to_icechunk(demo, tmp_path):
    with Database(demo) as db:
        en_scans = [r.uid for r in records.list_runs(db, records.RunQuery().narrow(plan_name="en_scan"))][:2]
        prefix = store_url_prefix(BeamtimeStore(db.zarr_path))
    registry = _registry()
    parts = []
    for uid in en_scans:
        parser = ResonanceParser(uid)
        parser(demo.resolve().as_uri(), registry)  # learns which variables to load
        vds = vz.open_virtual_dataset(demo.resolve().as_uri(), registry=registry, parser=parser,
                                      loadable_variables=parser.loadable_variables)
        assert isinstance(vds.detector_image.data, vz.manifests.ManifestArray)
        parts.append(vds)
    combined = xr.concat(parts, dim="time", coords="minimal", compat="override", combine_attrs="drop")
    assert combined.detector_image.shape[0] == sum(p.sizes["time"] for p in parts)

    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[7:])))
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")), config,
                                      authorize_virtual_chunk_access={prefix: None})
    session = repo.writable_session("main")
    combined.vz.to_icechunk(session.store, group="both")
    session.commit("two en_scan runs along time")
    got = xr.open_zarr(repo.readonly_session("main").store, group="both", consolidated=False, zarr_format=3).load()
    want = xr.concat([open_run_dataset(demo, u) for u in en_scans], dim="time", combine_attrs="drop").load()
    xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    np.testing.assert_array_equal(got.detector_image.values, want.detector_image.values)


def test_only_local_beamtimes_parse(demo):
    with pytest.raises(NotVirtualizableError, match="only a local beamtime"):
        ResonanceParser("abcdef")("s3://bucket/bt.db", _registry())
