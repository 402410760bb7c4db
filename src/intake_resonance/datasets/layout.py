"""What a run's Dataset would hold, told without reading its event table (intake's ``discover()``)."""

from __future__ import annotations

from typing import Any

from ..beamtime import records
from ..beamtime.format import Database
from ..beamtime.names import image_dims, variable_names
from .attrs import is_scanned_axis, run_attrs
from .build import image_field_names, resolve_stream

__all__ = ["run_layout"]


def run_layout(db: Database, uid: str, stream: str = "primary") -> dict[str, Any]:
    """What :func:`~intake_resonance.datasets.open.open_run_dataset` would hold, told without reading the event table.

    For intake's ``discover()`` and other listings: the run's attributes (as
    the Dataset's, with ``stream``), its dimension sizes and its variables'
    dimensions, from :func:`records.run_fields` (the descriptors, the first
    few events, the ``seq_num`` index and one frame reference per image
    field).

    Parameters
    ----------
    db : Database
    uid : str
        Full uid or a unique prefix of 6+ characters.
    stream : str

    Returns
    -------
    dict
        ``attrs`` (dict), ``dims`` (name -> size), ``data_vars`` (name -> list
        of dims) and ``coords`` (list of names).

    Notes
    -----
    A declared field that none of the run's events holds is listed here but
    gets no variable in the Dataset; telling them apart would mean reading
    every event.
    """
    run = records.get_run(db, records.resolve_uid(db, uid))
    assert run is not None  # resolve_uid only returns existing uids
    srec = resolve_stream(db, run, stream)
    attrs = {**run_attrs(db, run), "stream": stream}
    found = [] if srec is None else [s for s in records.run_fields(db, run.uid) if s.name == stream]
    n = found[0].n_events if found else 0
    infos = found[0].fields if found else []
    image_names = image_field_names(db, run.uid, srec, n)
    var_names = variable_names([f.name for f in infos if f.name not in image_names], image_names)
    dims: dict[str, int] = {"time": n}
    data_vars: dict[str, list[str]] = {}
    coords = ["time", "seq_num"]
    by_name = {f.name: f for f in infos}
    keys = {} if srec is None else srec.data_keys
    for f in infos:
        if f.name in image_names:
            continue
        var = var_names.get(f.name, f.name)
        if len(f.shape) == 1:
            dims[f"{var}_dim_0"] = f.shape[0]
            data_vars[var] = ["time", f"{var}_dim_0"]
        elif is_scanned_axis(keys.get(f.name)):
            coords.append(var)  # a motor: a coordinate along time, as the builder makes it
        else:
            data_vars[var] = ["time"]
    for name in image_names:
        var = var_names[name]
        info = by_name.get(name)
        shape = info.shape if info is not None and len(info.shape) == 2 else records.first_frame_shape(db, run.uid, stream, name)
        if shape is None:
            continue  # no frame and no usable shape: the Dataset has no variable either
        fx, fy = image_dims(var)
        dims[fx], dims[fy] = shape[0], shape[1]
        data_vars[var] = ["time", fx, fy]
    return {"attrs": attrs, "dims": dims, "data_vars": data_vars, "coords": coords}

