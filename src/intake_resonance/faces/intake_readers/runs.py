"""intake 2 readers of one run: a stream as an ``xarray.Dataset``, every stream as an ``xarray.DataTree``."""

from __future__ import annotations

import os
from typing import Any

from intake.readers.readers import FileReader

from .datatypes import Beamtime, check_local

__all__ = ["RunReader", "RunTreeReader"]

# Packages a run needs when it is read (checked by intake without importing them).
_RUN_IMPORTS = {"xarray", "dask", "zarr", "numpy", "pandas"}


class RunReader(FileReader):
    """One stream of one run as an ``xarray.Dataset`` with dask-backed frames.

    Keywords: ``uid`` (full uid or unique prefix of 6+ characters),
    ``stream`` (default ``"primary"``), ``chunks`` and ``drop_variables``, as
    :func:`intake_resonance.open_run_dataset`, which builds the Dataset.
    """

    implements = {Beamtime}
    imports = _RUN_IMPORTS
    output_instance = "xarray:Dataset"
    func = "intake_resonance:open_run_dataset"
    url_arg = "beamtime"

    def _read(
        self,
        data: Beamtime,
        uid: str,
        stream: str = "primary",
        chunks: Any = None,
        drop_variables: Any = None,
        **kwargs: Any,
    ) -> Any:
        from ...datasets.open import open_run_dataset

        _no_other_beamtime(data, kwargs)
        return open_run_dataset(check_local(data), uid, stream, chunks=chunks, drop_variables=drop_variables)


class RunTreeReader(FileReader):
    """Every stream of one run as an ``xarray.DataTree`` (``/<stream>`` nodes, run attrs at the root).

    Keywords: ``uid`` and ``chunks``, as :func:`intake_resonance.open_run_tree`.
    """

    implements = {Beamtime}
    imports = _RUN_IMPORTS
    output_instance = "xarray:DataTree"
    func = "intake_resonance:open_run_tree"
    url_arg = "beamtime"

    def _read(self, data: Beamtime, uid: str, chunks: Any = None, **kwargs: Any) -> Any:
        from ...datasets.open import open_run_tree

        _no_other_beamtime(data, kwargs)
        return open_run_tree(check_local(data), uid, chunks=chunks)


def _no_other_beamtime(data: Beamtime, kwargs: dict[str, Any]) -> None:
    # intake.reader_from_call passes the call's keywords on, ``beamtime=`` included.
    other = kwargs.pop("beamtime", data.url)
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, kwargs))} for a run of {data.url}")
    if os.fspath(other) != os.fspath(data.url):
        from ...beamtime.errors import BeamtimeError

        raise BeamtimeError(f"beamtime={other!r} disagrees with the reader's data", data.url)
