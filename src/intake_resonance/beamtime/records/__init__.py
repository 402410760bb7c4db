"""SQL to plain values: runs, samples, streams, event columns and frame maps.

Every function takes a :class:`~intake_resonance.beamtime.format.Database` and returns
plain Python / NumPy values; no other layer writes SQL. Criteria always travel
as SQL parameters.
"""

from __future__ import annotations

from ._values import MAX_JSON_DEPTH, MISSING, decode_json
from .arrays import column_array
from .bulk import MAX_PARAMS, ManyEvents, many_event_tables, many_image_fields, many_streams
from .columnar import EventTable, event_table, table_from_columns
from .events import EventColumns, StreamRecord, check_event_data, decode_event_rows, list_streams, stream_events
from .fields import FieldInfo, StreamFields, run_fields
from .framemap import MAX_FRAME_SIDE, FrameRefs, first_frame_shape, frame_refs, image_fields
from .query import RunQuery, column_criterion, epoch_seconds
from .raw import raw_events, raw_image_refs, raw_streams
from .runs import (
    RunRecord,
    SampleRecord,
    get_run,
    get_runs,
    get_sample,
    list_runs,
    list_uids,
    match_uids,
    recent_runs,
    resolve_uid,
    runs_by_sample,
    runs_table,
)
from .summary import RunCounts, counts_columns, counts_table, events_per_run, field_ranges, iso_utc, run_counts, run_summary

__all__ = [
    "MISSING",
    "MAX_JSON_DEPTH",
    "SampleRecord",
    "RunRecord",
    "StreamRecord",
    "EventColumns",
    "FrameRefs",
    "first_frame_shape",
    "MAX_FRAME_SIDE",
    "RunQuery",
    "epoch_seconds",
    "column_criterion",
    "list_uids",
    "runs_table",
    "list_runs",
    "get_run",
    "get_runs",
    "recent_runs",
    "runs_by_sample",
    "match_uids",
    "resolve_uid",
    "get_sample",
    "list_streams",
    "stream_events",
    "decode_event_rows",
    "EventTable",
    "event_table",
    "table_from_columns",
    "column_array",
    "FieldInfo",
    "StreamFields",
    "run_fields",
    "check_event_data",
    "image_fields",
    "frame_refs",
    "decode_json",
    "raw_streams",
    "raw_events",
    "raw_image_refs",
    "RunCounts",
    "run_counts",
    "events_per_run",
    "counts_columns",
    "ManyEvents",
    "many_event_tables",
    "many_streams",
    "many_image_fields",
    "MAX_PARAMS",
    "counts_table",
    "field_ranges",
    "iso_utc",
    "run_summary",
]
