"""One GPU check: everything of anydepth that needs a CUDA GPU, in one command (under 8 minutes on
one GPU), with the numbers to keep.

    python benchmarks/gpu_check.py [--out results.json] [--quick]
    python benchmarks/gpu_check.py --dry-run      # the same steps, tiny, on the CPU (run by the tests)

Sections (each one runs even when another fails; a failure is reported with its error line):
- cuda_tests: the CUDA-marked tests (`pytest -m cuda`: networks on the GPU equal the CPU, bf16
  training and TTO steps, the event simulator bit-identical);
- dav2_forward: Depth Anything V2 ViT-S / ViT-B forward at 518x518, batch 1 and 8, in fp32 (no
  TF32), tf32, bf16 and fp16 autocast: images/s and relative L2 error against fp32;
- depthanyevent_r_stream: DepthAnyEvent-R (ViT-S) at the DSEC input 322x644 on 320x640 windows of
  150 k events: network-only windows/s (fp32, fp16) and end to end through `DepthStream` (Tencode on
  the CPU, transfer, network, depth back) in fp16;
- tto: TTO-paper and TTO-fast per stack at 518 on rendered DDFF-12-like stacks (ViT-S of random
  values: the time per stack is what is measured here, not accuracy);
- simulator: the ESIM-style event simulator on CUDA (frames/s and events/s at 480x640);
- ddp: `torchrun --nproc-per-node 1` for `anydepth events pseudolabel` and `anydepth events train`
  on the GPU (NCCL process group, DDP wrapper);
- onnx: the ONNX export, when it exists.

Weights are deterministic random values in the official layouts (nothing is downloaded).
With --dry-run (and by itself on a machine without CUDA) every section runs the same steps on tiny
sizes on the CPU (ViT-P networks, small images and windows, two TTO iterations, gloo instead of
NCCL, the CPU's precisions fp32 and bf16), so the script is known to work before a GPU is at hand;
its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: official-layout random weights

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS: dict[str, object] = {}
ONLY: set[str] = set()  # --only: run these sections alone
DEVICE = "cuda"  # "cpu" with --dry-run


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def section(name: str):
    """Run a section, store what it returns (or its error) under `name`, print it as it comes."""
    def run(function):
        if ONLY and name not in ONLY:
            return function
        started = time.perf_counter()
        print(f"\n== {name}", flush=True)
        try:
            RESULTS[name] = function()
        except Exception as error:  # a broken section is a result too; the others still run
            RESULTS[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
            print(RESULTS[name]["traceback"], flush=True)
        print(f"-- {name}: {time.perf_counter() - started:.1f} s", flush=True)
        return function
    return run


def timed(function, warmup: int, iterations: int) -> float:
    """Median seconds of `function()` on the GPU (synchronised)."""
    for _ in range(warmup):
        function()
    sync()
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def pytest_result(result: subprocess.CompletedProcess) -> dict:
    """Exit code, summary line and the FAILED lines (with their error) of a pytest run."""
    lines = result.stdout.strip().splitlines()
    print(result.stdout[-3000:], flush=True)
    return {"returncode": result.returncode, "summary": lines[-1] if lines else result.stderr[-500:],
            "failed": [line for line in lines if line.startswith(("FAILED", "ERROR"))],
            "errors": [line for line in lines if line.startswith("E   ")][:40]}


def seeded(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    from tests.support.weights import random_weights

    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed))
    return model.eval()


PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def with_precision(precision: str, function):
    """`function()` under the precision: fp32 without TF32, tf32, or bf16/fp16 autocast."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if PRECISIONS[precision] is None:
        return function()
    with torch.autocast(DEVICE, dtype=PRECISIONS[precision]):
        return function()


def precisions() -> list[str]:
    """The precisions this device runs (the CPU: fp32 and bf16)."""
    return list(PRECISIONS) if DEVICE == "cuda" else ["fp32", "bf16"]


def relative_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.float(), reference.float()
    return float((value - reference).norm() / reference.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps on tiny sizes on the CPU (also the default without CUDA)")
    args = parser.parse_args()
    ONLY.update(name for name in args.only.split(",") if name)
    global DEVICE
    dry = args.dry_run or not torch.cuda.is_available()
    if dry:
        DEVICE = "cpu"
        print("gpu_check: dry run on the CPU (tiny sizes; the numbers mean nothing)", flush=True)
    repeats = 2 if dry else 5 if args.quick else 30
    torch.manual_seed(0)
    RESULTS["environment"] = {
        "gpu": torch.cuda.get_device_name(0) if not dry else "none (dry run on the CPU)", "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "dry_run": dry,
    }
    print(RESULTS["environment"], flush=True)
    work = Path(tempfile.mkdtemp(prefix="anydepth_gpu_check_"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}

    @section("cuda_tests")
    def _():
        command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
        if dry:  # they skip without CUDA: collect them only
            command = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "tests/test_cuda.py"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=400)
        return pytest_result(result)

    @section("dav2_forward")
    def _():
        from anydepth.foundation import DepthAnythingV2

        rows = []
        side = 56 if dry else 518
        for encoder in (("vitp",) if dry else ("vits", "vitb")):
            model = seeded(DepthAnythingV2(encoder), 0).to(DEVICE)
            for batch in ((1, 2) if dry else (1, 8)):
                x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1)).to(DEVICE)
                with torch.inference_mode():
                    reference = with_precision("fp32", lambda: model(x))
                    for precision in precisions():
                        seconds = timed(lambda: with_precision(precision, lambda: model(x)), 3, repeats)
                        error = relative_l2(with_precision(precision, lambda: model(x)), reference)
                        rows.append({"encoder": encoder, "batch": batch, "precision": precision,
                                     "images_per_s": batch / seconds, "ms_per_batch": 1e3 * seconds, "rel_l2_vs_fp32": error})
                        print(f"DAv2 {encoder} {side} batch {batch} {precision}: {batch / seconds:8.1f} images/s "
                              f"({1e3 * seconds:6.2f} ms), rel L2 vs fp32 {error:.2e}", flush=True)
            del model
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        return rows

    @section("depthanyevent_r_stream")
    def _():
        from anydepth.eventdepth import DepthStream
        from anydepth.eventdepth.depthanyevent import DepthAnyEvent
        from anydepth.events import EventArray

        if dry:
            model = seeded(DepthAnyEvent(encoder="vitp", recurrent=True, input_size=(84, 168)), 0)
            sensor, count, steps = (40, 80), 2000, 3
        else:
            model = seeded(DepthAnyEvent(recurrent=True, input_size=(322, 644)), 0).cuda()
            sensor, count, steps = (320, 640), 150_000, 12 if args.quick else 40
        rng = np.random.default_rng(0)
        windows = []
        for index in range(steps):
            windows.append(EventArray.from_arrays(rng.integers(0, sensor[1], count), rng.integers(0, sensor[0], count),
                                                  np.sort(rng.integers(index * 50_000, (index + 1) * 50_000, count)),
                                                  rng.integers(0, 2, count), sensor))
        inputs = [model.prepare(window) for window in windows]
        result = {"input": list(inputs[0].shape), "events_per_window": count}
        outputs = {}
        reduced = [p for p in ("fp16", "bf16") if p in precisions()]
        with torch.inference_mode():
            for precision in ("fp32", *reduced):
                def run_all():
                    state, last = None, None
                    for x in inputs:
                        last, state = with_precision(precision, lambda: model(x, state))
                    return last
                seconds = timed(run_all, 1, 3 if args.quick else 5) / len(inputs)
                outputs[precision] = run_all()
                result[f"network_{precision}_windows_per_s"] = 1 / seconds
                print(f"DepthAnyEvent-R {tuple(inputs[0].shape[-2:])} network {precision}: {1 / seconds:7.1f} windows/s", flush=True)
            for precision in reduced:
                result[f"rel_l2_{precision}_vs_fp32_after_{len(inputs)}_steps"] = relative_l2(outputs[precision], outputs["fp32"])
            stream = DepthStream(model, precision=reduced[0])  # fp16 on CUDA, bf16 on the CPU

            def stream_all():
                stream.reset()
                for window in windows:
                    stream.step(window)
            seconds = timed(stream_all, 1, 3) / len(windows)
        result[f"end_to_end_{reduced[0]}_windows_per_s"] = 1 / seconds
        print(f"DepthAnyEvent-R end to end (Tencode on CPU + network {reduced[0]} + depth to CPU): "
              f"{1 / seconds:7.1f} windows/s", flush=True)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        return result

    @section("tto")
    def _():
        from anydepth.focus import estimate_depth
        from anydepth.focus.tto import FAST, PAPER
        from anydepth.foundation import DepthAnythingV2
        from anydepth.synth.focus_sets import FOCUS_LAYOUTS, make_stack, rendered_scene

        model = seeded(DepthAnythingV2("vitp" if dry else "vits"), 0).to(DEVICE)
        layout = FOCUS_LAYOUTS["ddff12"]
        if dry:
            layout = dataclasses.replace(layout, resolution=(48, 64))
        size = 56 if dry else 518
        recipes = {"TTO-paper": dataclasses.replace(PAPER, input_size=size, iterations=2 if dry else 100 if args.quick else 500),
                   "TTO-fast": dataclasses.replace(FAST, input_size=size, iterations=2 if dry else FAST.iterations)}
        rows = []
        for seed in range(1 if args.quick or dry else 2):
            aif, depth = rendered_scene(1000 + seed, layout)
            stack = make_stack(aif, depth, layout)  # in DDFF-12 disparity
            for name, recipe in recipes.items():
                sync()
                started = time.perf_counter()
                result = estimate_depth(stack, model, "sml", tto=recipe, confidence="stack")
                sync()
                seconds = time.perf_counter() - started
                rows.append({"stack": seed, "recipe": name, "seconds_per_stack": seconds,
                             "tto_seconds": result.tto.seconds, "iterations": len(result.tto.losses) - 1,
                             "final_loss": result.tto.losses[-1], "floor": result.tto.floor})
                print(f"{name} stack {seed} at {size}: {seconds:6.2f} s per stack ({len(result.tto.losses) - 1} iterations, "
                      f"TTO {result.tto.seconds:.2f} s), final loss {result.tto.losses[-1]:.4e}", flush=True)
        return rows

    @section("simulator")
    def _():
        from anydepth import viz
        from anydepth.synth.esim import EventSimulator

        height, width, count = (32, 48, 5) if dry else (480, 640, 60 if args.quick else 200)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        frames = np.stack([0.5 + 0.4 * np.sin(0.05 * (xs + 3 * k)) * np.cos(0.04 * (ys - 2 * k)) for k in range(count)])
        frames = viz.to_uint8(frames)
        times = np.arange(count, dtype=np.int64) * 1000
        cuda_frames = torch.from_numpy(frames).to(DEVICE)
        EventSimulator(device=DEVICE).simulate(cuda_frames[:5], times[:5])  # warm-up
        sync()
        started = time.perf_counter()
        events = EventSimulator(device=DEVICE).simulate(cuda_frames, times)
        sync()
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        cpu_events = EventSimulator().simulate(frames[:20], times[:20])
        cpu_seconds = time.perf_counter() - started
        result = {"frames": count, "resolution": [height, width], "events": len(events),
                  "cuda_frames_per_s": count / seconds, "cuda_events_per_s": len(events) / seconds,
                  "cpu_frames_per_s": 20 / cpu_seconds, "cpu_events_first_20": len(cpu_events)}
        print(f"simulator {height}x{width}: {DEVICE} {count / seconds:.1f} frames/s ({len(events) / seconds / 1e6:.1f} M events/s); "
              f"CPU {20 / cpu_seconds:.1f} frames/s", flush=True)
        return result

    @section("ddp")
    def _():
        from tests.support.weights import random_state_dict
        from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

        data = work / "ds"
        for seed, name in enumerate(("train/a", "train/b")):
            spec = EventSequenceSpec(seconds=0.25 if dry else 0.5, resolution=(48, 64) if dry else (96, 128),
                                     internal_fps=200 if dry else 300, frame_hz=20, depth_hz=20, seed=seed)
            write_event_sequence(generate_event_sequence(spec), data / name, "dsec")
        teacher = "vitp" if dry else "vits"
        torch.save(random_state_dict(teacher, seed=3), work / "teacher.pth")
        nccl_env = {**env, "NCCL_DEBUG": "INFO"}
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "-m", "anydepth", "events"]
        result = {}
        started = time.perf_counter()
        labels = subprocess.run([*torchrun, "pseudolabel", str(data), "--weights", str(work / "teacher.pth"),
                                 "--out", str(work / "labels"), "--input-size", "56" if dry else "266", "--device", DEVICE],
                                capture_output=True, text=True, env=nccl_env, timeout=300)
        result["pseudolabel"] = {"returncode": labels.returncode, "seconds": time.perf_counter() - started,
                                 "nccl": "NCCL INFO" in labels.stdout + labels.stderr,
                                 "tail": (labels.stdout + labels.stderr).strip().splitlines()[-1:]}
        print(result["pseudolabel"], flush=True)
        if labels.returncode != 0:
            print(labels.stderr[-3000:], flush=True)
        config = work / "train.yaml"
        config.write_text(json.dumps({
            "model": {"name": "depthanyevent-r", "config": {"encoder": teacher,
                                                            "input_size": [84, 112] if dry else [266, 350]}},
            "data": {"sources": [{"path": str(data), "labels": "pseudo", "pseudolabels": str(work / "labels")}],
                     "sequence_length": 2 if dry else 3, "crop": [40, 56] if dry else [80, 112]},
            "regime": "distilled", "loss": {"name": "ssi"}, "optim": {"lr": 5e-6},
            "steps": 2 if dry else 10 if args.quick else 30, "batch_size": 2 if dry else 4, "checkpoint_every": 10,
            "device": DEVICE,
            "out": str(work / "run")}))  # JSON is YAML
        started = time.perf_counter()
        train = subprocess.run([*torchrun, "train", str(config)], capture_output=True, text=True, env=nccl_env, timeout=300)
        result["train"] = {"returncode": train.returncode, "seconds": time.perf_counter() - started,
                           "nccl": "NCCL INFO" in train.stdout + train.stderr,
                           "losses": re.findall(r"step (\d+): loss ([0-9.eE+-]+)", train.stdout)[-3:],
                           "student": (work / "run" / "student.pth").is_file()}
        print(result["train"], flush=True)
        if train.returncode != 0:
            print(train.stderr[-3000:], flush=True)
        return result

    @section("onnx")
    def _():
        try:
            from anydepth import export  # noqa: F401  (the ONNX export of issue 16, when it exists)
        except ImportError:
            return {"skipped": "the ONNX export is not built yet (anydepth.export is missing)"}
        if dry:  # one tiny export through onnxruntime instead of the ONNX tests
            from anydepth.export.onnx import OnnxModel, export_onnx
            from anydepth.foundation import DepthAnythingV2

            model = seeded(DepthAnythingV2("vitp"), 0)
            exported = export_onnx(model, work / "dav2.onnx", (56, 56))
            x = torch.rand(1, 3, 56, 70, generator=torch.Generator().manual_seed(2))
            with torch.inference_mode():
                error = relative_l2(OnnxModel(exported.path, model).forward(x), model(x))
            print(f"ONNX export of DAv2 vitp through onnxruntime: rel L2 vs torch {error:.2e}", flush=True)
            return {"rel_l2_vs_torch": error}
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "onnx", "-p", "no:cacheprovider", "tests"],
                                cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
        return pytest_result(result)

    failures = [name for name, value in RESULTS.items() if isinstance(value, dict) and
                ("error" in value or value.get("returncode", 0) != 0)]
    RESULTS["failed_sections"] = failures
    print(f"\nfailed sections: {', '.join(failures) or 'none'}")
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=2, default=str))
        print(f"results: {args.out}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
