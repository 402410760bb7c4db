"""The ``intake-resonance`` command: look into beamtimes from a shell.

Commands: ``demo`` (write the demo beamtime), ``ls`` (list runs), ``show``
(one run's attributes, streams and fields), ``check`` (validate a
beamtime), ``export`` (a run to netCDF or Zarr), ``plot`` (a run to PNG),
``catalog`` (an intake YAML catalog for a folder of beamtimes), ``serve``
(beamtimes over HTTP with tiled) and ``virtualize`` (a beamtime as a virtual
Zarr repository, in :mod:`.cli_virtual`).

Every command reads through the package's faces (intake catalog, run
Datasets); none talks SQL. Bad input (a missing or broken file, an unknown
uid, a bad option) ends with exit status 2 and one line on standard error
that names the file and the problem; ``check`` exits 1 when it finds errors.
Programming errors are not caught: their tracebacks should be seen.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from .._version import __version__
from ..beamtime.errors import BeamtimeError
from .cli_output import EXIT_BAD_INPUT, BadInput, printable
from .cli_output import progress_option as co_progress_option
from .cli_virtual import virtualize_command

__all__ = ["cli", "main"]

PROG = "intake-resonance"
#: True when the command runs as its own process (``main``), not inside another program.
_OWN_PROCESS = False
class _Group(click.Group):
    """A command group whose errors are one line on stderr, never a traceback.

    Beamtime errors raised by a command become :class:`BadInput`; click's own
    usage errors keep their message but lose the usage block, so a script
    (or a person) reading stderr gets exactly one line.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BeamtimeError as exc:
            raise BadInput(str(exc)) from exc

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        standalone = extra.pop("standalone_mode", True)
        try:
            rv = super().main(args, prog_name or PROG, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if not standalone:
                raise
            _fail(exc)
        except click.Abort:
            if not standalone:
                raise
            click.echo(f"{PROG}: aborted", err=True)
            sys.exit(1)
        if not standalone:
            return rv
        # Without standalone mode click returns the code of ctx.exit(code) (or None).
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(exc: click.ClickException) -> None:
    message = " ".join(exc.format_message().split())  # one line, whatever the message holds
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        where = f"{exc.ctx.command_path}: "
        message += f" (see '{exc.ctx.command_path} --help')"
    elif isinstance(exc, click.UsageError):
        where = f"{PROG}: "
    else:
        where = f"{PROG}: error: "
    click.echo(printable(where + message), err=True)
    code = EXIT_BAD_INPUT if isinstance(exc, (click.UsageError, BadInput)) else exc.exit_code
    if _OWN_PROCESS and getattr(exc, "skip_exit_handlers", False):
        # After a failed netCDF write HDF5 crashes in its exit handler (a segmentation
        # fault after the message): the partial file is gone already, so end here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Read ALS RSoXS beamtimes (NAME.db + NAME.zarr) from the command line."""


cli.add_command(virtualize_command)


# ------------------------------------------------------------------ helpers
_DB = click.Path(dir_okay=False, path_type=Path)


def _runs(path: Any) -> Any:
    """The beamtime's runs through the model every catalog face translates (keys, search, table)."""
    from ..datasets.runset import RunSet

    return RunSet(path)


def _run_source(path: Path, uid: str, stream: str = "primary") -> Any:
    """The run a uid or unique prefix names, as an intake source of that stream."""
    from ..faces.intake_drivers import RunSource

    runs = _runs(path)
    try:
        # The exact uid first, then a unique prefix; unknown or ambiguous: RunNotFoundError
        return RunSource(str(runs.path), runs.key(uid), stream=stream)
    finally:
        runs.close()


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    # Checked here so a bad time is a usage error naming the option, not a ValueError deep inside.
    from ..beamtime.records import epoch_seconds

    if value is None:
        return None
    try:
        return epoch_seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _iso(t: Any) -> str:
    import pandas as pd

    return "-" if pd.isna(t) else t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------- demo
#: Largest demo frame side: 66 frames of 2048 x 2048 int32 are 1.1 GB already.
MAX_DEMO_FRAME = 2048

@cli.command(short_help="Write the demo beamtime into a folder.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the data and the uids (0 or more).")
@click.option(
    "--frame-shape",
    type=(click.IntRange(16, MAX_DEMO_FRAME), click.IntRange(16, MAX_DEMO_FRAME)),
    default=(128, 128),
    show_default=True,
    help=f"Detector frame size X Y (16 to {MAX_DEMO_FRAME}; the demo holds 66 frames).",
)
@click.option("--force", is_flag=True, help="Replace a demo beamtime that is already there (never anything else).")
def demo(folder: Path, seed: int, frame_shape: tuple[int, int], force: bool) -> None:
    """Write the demo beamtime into FOLDER and print the path of its .db."""
    from . import cli_output as co
    from .demo import DEMO_NAME, write_demo

    co.refuse_inside_store(folder)
    try:
        path = write_demo(folder, seed=seed, frame_shape=frame_shape, overwrite=force)
    except FileExistsError as exc:
        if force:  # something that is not our demo: write_demo says what
            raise BadInput(str(exc)) from exc
        raise BadInput(f"{folder / DEMO_NAME}.db: a demo beamtime is already there (use --force to replace it)") from exc
    except ValueError as exc:  # a frame shape write_demo cannot make
        raise click.BadParameter(str(exc), param_hint="'--frame-shape'") from exc
    except OSError as exc:  # a folder that cannot be made or written
        raise BadInput(f"{folder}: cannot write the demo beamtime: {co.reason(exc)}") from exc
    click.echo(str(path))


# ----------------------------------------------------------------------- ls
_LS_HEADER = (
    f"{'uid':<8}  {'plan':<10}  {'sample':<10}  {'start (UTC)':<20}  {'duration':>8}  {'status':<8}  "
    f"{'events':>6}  {'primary':>7}  {'frames':>6}  {'energy':<15}"
)


def _duration(start: Any, stop: Any) -> str:
    import pandas as pd

    if pd.isna(start) or pd.isna(stop):
        return "-"  # still open (or never closed)
    seconds = max(0, round((stop - start).total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _energy(span: tuple[float, float] | None) -> str:
    if span is None:
        return "-"
    lo, hi = span
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _ls_lines(path: Path, criteria: dict[str, Any], prefix: str = "") -> list[str]:
    """One line per run of the beamtime ``path`` matching ``criteria``."""
    from ..beamtime import records

    everything = _runs(path)
    try:
        runs = everything.narrow(**criteria)
        df = runs.table()
        # min/max inside SQLite: no event table is decoded
        ranges = records.field_ranges(runs.db, "energy_position", "primary", runs.query)
    finally:
        everything.close()
    lines = []
    for row in df.itertuples(index=False):
        sample = row.sample if isinstance(row.sample, str) else "-"
        status = row.exit_status if isinstance(row.exit_status, str) else "open"
        line = (
            f"{prefix}{row.uid[:8]:<8}  {row.plan_name:<10}  {sample:<10}  {_iso(row.time_start):<20}  "
            f"{_duration(row.time_start, row.time_stop):>8}  {status:<8}  {row.num_events:>6}  "
            f"{row.stream_events:>7}  {row.frames:>6}  {_energy(ranges.get(row.uid)):<15}".rstrip()
        )
        lines.append(printable(line))  # one line per run, whatever the beamtime's text holds
    return lines


@cli.command("ls", short_help="List runs, newest last (a .db, or every beamtime in a folder).")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--plan", "plans", multiple=True, help="Only runs of this plan (repeat for several).")
@click.option("--sample", "samples", multiple=True, help="Only runs on this sample (repeat for several).")
@click.option("--since", callback=_since, help="Only runs started at or after this time (ISO 8601, UTC).")
@click.option("--until", callback=_since, help="Only runs started before this time (ISO 8601, UTC).")
def ls_(path: Path, plans: tuple[str, ...], samples: tuple[str, ...], since: float | None, until: float | None) -> None:
    """List the runs of the beamtime PATH (.db), newest last; PATH a folder: every beamtime (*.db) in it.

    Columns: uid prefix, plan, sample, start (UTC), duration (H:MM:SS; - while
    open), status, events (committed, all streams; an open run's too),
    primary (events of the primary stream: the rows of its Dataset), frames
    (of the primary stream) and the energy range of the primary stream.
    A folder adds the beamtime's name (file stem) in front.
    """
    criteria: dict[str, Any] = {}
    if plans:
        criteria["plan_name"] = list(plans)
    if samples:
        criteria["sample"] = list(samples)
    if since is not None:
        criteria["since"] = since
    if until is not None:
        criteria["until"] = until
    if path.is_dir():
        from ..beamtime.folder import beamtime_files

        beamtimes = beamtime_files(path)
        if not beamtimes:
            raise BadInput(f"{path}: no beamtime (*.db) in this folder")
        width = max(len("beamtime"), *(len(db.stem) for db in beamtimes))
        lines = [line for db in beamtimes for line in _ls_lines(db, criteria, prefix=f"{db.stem:<{width}}  ")]
        click.echo(f"{'beamtime':<{width}}  {_LS_HEADER}".rstrip())
        click.echo("\n".join(lines), nl=bool(lines))
        click.echo(f"{len(lines)} run(s) in {len(beamtimes)} beamtime(s)", err=True)
        return
    lines = _ls_lines(path, criteria)  # read before printing: a bad file prints nothing on stdout
    click.echo(_LS_HEADER.rstrip())
    click.echo("\n".join(lines), nl=bool(lines))
    click.echo(f"{len(lines)} run(s)", err=True)  # a count for people; stdout stays one line per run


# --------------------------------------------------------------------- show
def _say(line: str) -> None:
    click.echo(printable(line))


def _fmt(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


@cli.command(short_help="Show a run: attributes, sample, streams, fields.")
@click.argument("path", type=_DB)
@click.argument("uid")
def show(path: Path, uid: str) -> None:
    """Show run UID (or a unique prefix) of beamtime PATH: attributes, sample, streams, fields.

    Frames are never read: shapes and dtypes come from the references.
    """
    from ..beamtime import records
    from ..beamtime.format import Database
    from ..datasets.open import run_attrs

    # Fields from the descriptors and the first few events: no table is read.
    with Database(path) as db:
        run = records.get_run(db, _runs(db).key(uid))
        assert run is not None  # keys are existing uids
        attrs = run_attrs(db, run)
        streams = records.run_fields(db, run.uid)
        counts = records.run_counts(db, run.uid)
    sample = {k[len("sample_"):]: v for k, v in attrs.items() if k.startswith("sample_")}
    _say(f"run {attrs.get('uid')}")
    for key, value in attrs.items():
        if not key.startswith("sample_") and key != "uid":
            _say(f"  {key}: {_fmt(value)}")
    _say(f"sample: {sample.pop('name', '-') if sample else '-'}")
    for key, value in sample.items():
        _say(f"  {key}: {_fmt(value)}")
    _say(f"streams: {len(streams)}")
    for stream in streams:
        frames = counts.stream_frames(stream.name)
        _say(f"  {stream.name}: {stream.n_events} events" + (f", {frames} frames" if frames else ""))
        for f in stream.fields:
            shape = "x".join(str(v) for v in (stream.n_events, *f.shape))
            lazy = "  (frames, not read)" if f.external else ""
            units = f.units or ("counts" if f.external else "-")  # as the Dataset's frame variables say
            _say(f"    {f.name:<24} {f.dtype:<8} {shape:<14} {units}{lazy}")


# -------------------------------------------------------------------- check
@cli.command(short_help="Check a beamtime; exit 1 on errors.")
@click.argument("path", type=_DB)
@click.option("--no-frames", is_flag=True, help="Do not check image references against the Zarr store.")
@click.option("--pixels", is_flag=True, help="Also decode every referenced frame (reads the whole store).")
@click.pass_context
def check(ctx: click.Context, path: Path, no_frames: bool, pixels: bool) -> None:
    """Check the beamtime PATH: one line per finding; exit 1 if any is an error (warnings allowed).

    Only metadata is read unless --pixels is given.
    """
    from ..beamtime.errors import BeamtimeNotFoundError
    from .check import check as check_beamtime

    if not path.exists():  # nothing to check is bad input (exit 2), not a finding
        raise BeamtimeNotFoundError("beamtime database does not exist", path)
    findings = check_beamtime(path, frames=not no_frames, pixels=pixels and not no_frames)
    for finding in findings:
        click.echo(printable(finding))
    errors = sum(1 for f in findings if f.level == "error")
    warnings = len(findings) - errors
    click.echo(f"{path}: {errors} error(s), {warnings} warning(s)", err=True)
    if errors:
        ctx.exit(1)


# ------------------------------------------------------------------- export
def _open_for_export(path: Path, uid: str, stream: str, steps: int = 50) -> Any:
    """The run's Dataset, its frames chunked so the progress bar moves in about ``steps`` steps."""
    from ..faces.intake_drivers import RunSource

    src = _run_source(path, uid, stream)
    ds = src.to_dask()
    images = [v for v in ds.data_vars.values() if v.ndim == 3 and v.chunks]
    if not images:
        return ds
    n = max(v.shape[0] for v in images)
    largest = max(max(v.chunks[0], default=1) for v in images)
    per_chunk = max(1, -(-n // steps))
    # Only ever smaller than the default chunks, which are sized for memory.
    return ds if per_chunk >= largest else RunSource(str(path), src.uid, stream=stream, chunks=per_chunk).to_dask()



def _run_uid(ds: Any, uid: str) -> str:
    return str(ds.attrs.get("uid", uid))



@cli.command(short_help="Write a run to netCDF (.nc) or Zarr (.zarr).")
@click.argument("path", type=_DB)
@click.argument("uid")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Output .nc or .zarr.")
@click.option("--stream", default="primary", show_default=True, help="Stream to export.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@co_progress_option
def export(path: Path, uid: str, out: Path, stream: str, force: bool, progress: bool) -> None:
    """Write run UID of beamtime PATH to OUT (.nc netCDF or .zarr), with a progress bar over the frames on a terminal."""
    import dask
    from tqdm import tqdm

    from . import cli_output as co

    co.check_output(out, list(co.WRITERS))
    kind = co.WRITERS[out.suffix.lower()]
    co.refuse_beamtime_output(out, path)
    if (out.exists() or out.is_symlink()) and not force:
        raise BadInput(f"{out}: already exists (use --force to replace it)")
    ds = _open_for_export(path, uid, stream)
    # Write beside the target first: a failed export never leaves half a file under OUT's name.
    partial = co.partial_path(out)
    co.remove(partial)
    total = co.frame_count(ds)
    with tqdm(total=total, unit="frame", desc=out.name, disable=not (progress and total), file=sys.stderr) as bar:
        # One chunk at a time (each chunk's frames still decode on every core): with a
        # thread pool, a chunk still being written after another failed can reopen the
        # file xarray just closed and leave a partial file behind.
        with dask.config.set(scheduler="sync"):
            try:
                with co.quiet_hdf5_handles():
                    co.write(co.with_progress(co.exportable(ds), bar.update), partial, kind)
            except BaseException as exc:
                if kind == "netcdf":
                    co.release_failed_netcdf(partial, exc)
                co.remove(partial, quiet=True)
                if isinstance(exc, OSError) and not isinstance(exc, BeamtimeError):
                    failed = BadInput(f"{out}: cannot write: {co.reason(exc)}")
                    # HDF5 cannot shut down cleanly after a failed write (it crashes at exit)
                    failed.skip_exit_handlers = kind == "netcdf"  # type: ignore[attr-defined]
                    raise failed from exc
                if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, BeamtimeError):
                    # what the run holds, netCDF/Zarr cannot store (xarray's message names the variable)
                    raise BadInput(f"{out}: cannot write run {_run_uid(ds, uid)} stream {stream}: {co.first_line(exc)}") from exc
                raise
    try:
        co.commit(partial, out)  # flushed first: a full disk fails here, with the old OUT still whole
    except OSError as exc:
        co.remove(partial, quiet=True)
        raise BadInput(f"{out}: cannot write: {co.reason(exc)}") from exc
    click.echo(str(out))


# --------------------------------------------------------------------- plot
@cli.command(short_help="Plot a run (spectrum or frame) to PNG.")
@click.argument("path", type=_DB)
@click.argument("uid")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output image (.png).")
@click.option("--stream", default="primary", show_default=True, help="Stream to plot.")
@click.option("--field", default=None, help="Image field to show (default: the first).")
@click.option("--frame", type=int, default=None,
              help="Show the frame at this 0-based position in the stream (negative: from the end) instead of the mean.")
@click.option("--log", "log_scale", is_flag=True, help="Logarithmic colour scale for frames.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def plot(path: Path, uid: str, out: Path, stream: str, field: str | None, frame: int | None, log_scale: bool, force: bool) -> None:
    """Plot run UID of beamtime PATH into OUT: a NEXAFS curve, or the mean (or one) detector frame."""
    from ..analysis.plot import IMAGE_SUFFIXES, save_run_plot
    from . import cli_output as co

    co.check_output(out, IMAGE_SUFFIXES)
    co.refuse_beamtime_output(out, path)
    if (out.exists() or out.is_symlink()) and not force:
        raise BadInput(f"{out}: already exists (use --force to replace it)")
    ds = _run_source(path, uid, stream).to_dask()
    try:
        saved = save_run_plot(ds, out, field=field, frame=frame, log=log_scale)
    except OSError as exc:
        if isinstance(exc, BeamtimeError):
            raise
        raise BadInput(f"{out}: cannot write: {co.reason(exc)}") from exc
    click.echo(str(saved))


# ------------------------------------------------------------------ catalog
def catalog_yaml(folder: Path) -> str:
    """YAML text of an intake catalog for every beamtime ``*.db`` in ``folder``.

    One ``resonance_beamtime`` source per file, named by its stem, and a
    ``resonance_beamtimes`` source for the whole folder (named ``beamtimes``,
    or ``beamtimes_folder`` if a file is called ``beamtimes.db``). Paths are
    absolute, so the text works wherever it is saved.
    """
    import yaml

    from ..beamtime.folder import beamtime_files, folder_entry_name

    folder = folder.resolve()
    sources: dict[str, Any] = {}
    for db in beamtime_files(folder):
        sources[db.stem] = {
            "description": f"Beamtime {db.name} as a catalog of runs (oldest first)",
            "driver": "resonance_beamtime",
            "args": {"path": str(db)},
        }
    sources[folder_entry_name(sources)] = {
        "description": f"Every beamtime in {folder} as a catalog of beamtime catalogs",
        "driver": "resonance_beamtimes",
        "args": {"path": str(folder)},
    }
    doc = {"metadata": {"version": 1, "description": f"ALS RSoXS beamtimes in {folder}"}, "sources": sources}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


@cli.command("catalog", short_help="Print an intake YAML catalog for a folder.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--v2", "v2", is_flag=True, help="An intake 2 catalog (readers; open with intake.from_yaml_file).")
def catalog_(folder: Path, v2: bool) -> None:
    """Print an intake YAML catalog for the beamtimes in FOLDER (save it and open with intake.open_catalog).

    With --v2: an intake 2 catalog of beamtime readers (open it with intake.from_yaml_file).
    """
    if v2:
        import yaml

        from ..faces.intake_readers import folder_catalog

        click.echo(yaml.safe_dump(folder_catalog(folder).to_dict(), sort_keys=False, default_flow_style=False), nl=False)
        return
    click.echo(catalog_yaml(folder), nl=False)


# -------------------------------------------------------------------- serve
@cli.command(short_help="Serve a beamtime (or a folder) over HTTP with tiled.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--api-key", default=None,
              help="Key clients must present, 8+ printable ASCII characters (default: $TILED_SINGLE_USER_API_KEY, else a new one).")
@click.option("--public", is_flag=True, help="Anyone who can connect may read, without a key.")
@click.option("--max-bytes", type=click.IntRange(1), default=None,
              help="Largest frame read one request may ask for; larger is answered 413 (default 256 MiB).")
def serve(path: Path, host: str, port: int, api_key: str | None, public: bool, max_bytes: int | None) -> None:
    """Serve PATH (a beamtime .db, or a folder of them) read-only over HTTP with tiled until interrupted.

    Every route needs the key (header 'Authorization: Apikey KEY' or query 'api_key=KEY') unless --public.
    """
    try:
        import uvicorn

        from ..faces.tiled import DEFAULT_MAX_BYTES, build_server
    except ImportError as exc:
        raise BadInput(f"serving needs tiled: pip install 'intake-resonance[tiled]' ({exc})") from exc
    try:
        app, key, source = build_server(path, api_key=api_key, public=public, max_bytes=max_bytes or DEFAULT_MAX_BYTES)
    except BeamtimeError:
        raise
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    click.echo(f"serving {path} (read-only) at {url}", err=True)
    if public:
        click.echo("public: anyone who can connect may read", err=True)
    shown = key if source == "generated" else f"(from {'--api-key' if source == 'option' else '$TILED_SINGLE_USER_API_KEY'})"
    click.echo(f"API key: {shown}", err=True)
    click.echo(f'connect: tiled.client.from_uri("{url}", api_key="{key if source == "generated" else "..."}")', err=True)
    # Ctrl-C and SIGTERM stop the server; uvicorn shuts down gracefully, then
    # re-raises the signal, which ends here as a normal exit (status 0).
    previous = signal.signal(signal.SIGTERM, _stop_serving)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("stopped", err=True)


class _Stopped(Exception):
    """SIGTERM arrived while serving."""


def _stop_serving(signum: int, frame: Any) -> None:
    raise _Stopped


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``intake-resonance`` command (the console script's entry point).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; ``sys.argv[1:]`` by default.
    """
    global _OWN_PROCESS
    _OWN_PROCESS = True
    cli.main(args=list(argv) if argv is not None else None, prog_name=PROG)


if __name__ == "__main__":
    main()
