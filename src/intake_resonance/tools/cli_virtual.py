"""``intake-resonance virtualize``: a beamtime as a virtual Zarr (Icechunk) repository, from a shell.

A command of its own module (registered by :mod:`.cli`) so the command line
loads VirtualiZarr and Icechunk only when this command runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .cli_output import BadInput, first_line
from .cli_output import progress_option as co_progress_option

__all__ = ["virtualize_command"]


@click.command("virtualize", short_help="Write a beamtime as a virtual Zarr (Icechunk) repository.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Repository folder: new, empty, or one written before for this beamtime (then appended to).")
@click.option("--run", "runs", multiple=True, help="Only this run (uid or unique prefix; repeat for several).")
@click.option("--skip-unmappable", is_flag=True, help="Leave out runs whose frames cannot be referenced chunk by chunk.")
@click.option("--verify", is_flag=True,
              help="Write nothing: list the runs of OUT that no longer match PATH (exit 1 if any).")
@co_progress_option
@click.pass_context
def virtualize_command(
    ctx: click.Context, path: Path, out: Path, runs: tuple[str, ...], skip_unmappable: bool, verify: bool, progress: bool
) -> None:
    """Write beamtime PATH into the Icechunk repository OUT: frames referenced where they lie, nothing copied.

    Any Zarr reader then opens a run with xarray, zarr and icechunk alone:
    xr.open_zarr(session.store, group="UID/primary"). Run it again to add new
    runs and new events of runs still open, and to reference again the runs
    whose chunk files changed since (a restore, a copy without times), as a
    new commit. --verify only says which runs no longer match (file sizes
    and times are compared; no frame is read).
    """
    try:
        import icechunk

        from ..virtual.write import virtualize
    except ImportError as exc:
        raise BadInput(f"virtualize needs the 'virtual' extra: pip install 'intake-resonance[virtual]' ({exc})") from exc
    if "ICECHUNK_LOG" not in os.environ:
        icechunk.set_logs_filter("error")  # its warnings would break the one-line rule on stderr
    if verify:
        from ..virtual.write import verify_virtual

        try:
            stale = verify_virtual(path, out)
        except icechunk.IcechunkError as exc:
            raise BadInput(f"{out}: Icechunk failed: {first_line(exc)}") from exc
        for uid, reason in stale.items():
            click.echo(f"stale run {uid}: {reason}")
        what = f"{len(stale)} run(s) no longer match: run virtualize again to reference them anew" if stale else "true"
        click.echo(f"{out}: {what}", err=True)
        ctx.exit(1 if stale else 0)
    try:
        report = virtualize(path, out, list(runs) or None, skip_unmappable=skip_unmappable, progress=progress)
    except icechunk.IcechunkError as exc:
        raise BadInput(f"{out}: Icechunk failed: {first_line(exc)}") from exc
    for uid, reason in report.skipped.items():
        click.echo(f"skipped run {uid}: {' '.join(reason.split())}", err=True)
    commit = f"snapshot {report.snapshot_id}" if report.snapshot_id else "nothing new, no commit"
    click.echo(
        f"{report.target}: {len(report.written)} run(s) written"
        + (f" ({len(report.refreshed)} because their chunk files changed)" if report.refreshed else "")
        + f", {len(report.unchanged)} unchanged, "
        f"{len(report.skipped)} skipped, {report.chunks} frame(s) referenced; {commit}"
    )
