"""`anydepth events pseudolabel`: Depth Anything V2 pseudo-labels on the frames of a dataset."""

from __future__ import annotations

import sys
import time

from anydepth.cli.common import add_encoder, add_input_size, add_limit, add_network, add_out, add_weights
from anydepth.errors import InputError


def add_action(actions) -> None:
    parser = actions.add_parser(
        "pseudolabel",
        help="Depth Anything V2 pseudo-labels on the frames of every aligned sample",
        description="Run a relative Depth Anything V2 teacher on the frame of every aligned sample of every "
        "sequence of DATASET and store one label per sample: OUT/<sequence>/<index:06d>.npz (key 'depth': "
        "float32 relative inverse depth at the frame size; plus timestamp_us, teacher, input_size, frame_sha1, "
        "label_sha1, weights_sha1) and OUT/manifest.json. Each frame runs alone, so a label does not depend on "
        "the others. Resumable: finished labels are skipped, and a killed run leaves no partial file. "
        "Shards across GPUs under torchrun (torchrun --nproc-per-node N -m anydepth events pseudolabel ...).",
    )
    parser.add_argument("dataset", metavar="DATASET", help="a DSEC root or sequence, MVSEC files, or voxel folders")
    add_encoder(parser, "the teacher's Depth Anything V2 encoder", "read from --weights, else vitl")
    add_weights(parser, "teacher weights (official .pth, HF .safetensors or anydepth checkpoint)",
                "the official relative release from the cache ($ANYDEPTH_CACHE) or the hub")
    add_out(parser, None, "output folder (default DATASET/pseudolabels_<encoder>, beside DATASET for a file)")
    add_input_size(parser)
    add_network(parser, note="; cuda:LOCAL_RANK under torchrun")
    add_limit(parser, "only the first N samples of the dataset (all sequences, sorted)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from anydepth.cli.common import check_network, check_output_dir, progress
    from anydepth.distill.distributed import close_distributed, setup_distributed
    from anydepth.distill.pseudolabels import generate_pseudolabels
    from anydepth.distill.sequences import find_sequences
    from anydepth.foundation import load_depth_anything

    if args.out is not None:
        check_output_dir(args.out, "--out")
    check_network(args)
    find_sequences(args.dataset)  # fail on a bad dataset before loading (or downloading) the teacher

    place = setup_distributed(args.device)
    rank, world_size, device = place.rank, place.world_size, place.device
    try:
        encoder = args.encoder or (None if args.weights else "vitl")
        model = load_depth_anything(encoder, args.weights, variant="relative", device=device)
        if model.config.head != "relative":
            raise InputError(f"{args.weights}: a metric model; pseudo-labels need a relative teacher")
        teacher = model.config.encoder
        started = time.perf_counter()
        bar = progress(desc="pseudo-labels" if world_size == 1 else f"pseudo-labels [rank {rank}]", unit="frame",
                       position=rank if world_size > 1 else None)

        def start(total: int) -> None:
            bar.reset(total=total)

        try:
            summary = generate_pseudolabels(args.dataset, model, args.out, teacher, args.input_size, bar.update,
                                            rank, world_size, args.limit, on_start=start,
                                            precision=args.precision)
        finally:
            bar.close()
    finally:
        close_distributed()
    elapsed = time.perf_counter() - started
    shard = f" (rank {rank} of {world_size})" if world_size > 1 else ""
    print(f"{summary.computed} computed, {summary.skipped} skipped (done), {summary.no_frame} without a frame"
          f"{shard} in {elapsed:.1f} s; teacher {teacher} at {args.input_size} ({args.precision}); labels in {Path(summary.out)}",
          file=sys.stdout)
    return 0
