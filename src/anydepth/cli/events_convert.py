"""`anydepth events convert INPUT OUTPUT.h5`: any recording -> DSEC-style HDF5 (fast random access)."""

from __future__ import annotations

from anydepth.cli.common import add_repair, check_output_file, progress


def add_action(actions) -> None:
    """Add `convert` to the ACTION subparsers of `anydepth events`."""
    parser = actions.add_parser(
        "convert", help="rewrite any recording as a DSEC-style HDF5 (Blosc, ms_to_idx) for fast random access",
        description="Write every event of INPUT (any format `events info` reads) to OUTPUT.h5 in DSEC's layout: "
                    "events/{x,y,t,p} Blosc/ZSTD-compressed, ms_to_idx, t_offset, plus the sensor size as an "
                    "attribute. Reads and writes window by window (bounded memory); OUTPUT appears only when complete.")
    parser.add_argument("input", help="recording")
    parser.add_argument("output", help="DSEC-style .h5 to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    add_repair(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from anydepth.events.convert import convert_to_dsec

    check_output_file(args.output, "OUTPUT", (".h5", ".hdf5"))
    with progress(desc="convert", unit="ev", unit_scale=True) as bar:
        def advance(written: int, total: int) -> None:
            bar.total = total
            bar.update(written - bar.n)

        report = convert_to_dsec(args.input, args.output, overwrite=args.overwrite, progress=advance,
                                 repair=args.repair)
    span_s = 0.0 if report.t_start_us is None else (report.t_end_us - report.t_start_us) / 1e6
    print(f"{report.events} events ({span_s:.3f} s, sensor {report.sensor_size[0]}x{report.sensor_size[1]}) -> "
          f"{report.path} in {report.seconds:.2f} s ({report.events_per_second / 1e6:.1f} M events/s)")
    return 0
