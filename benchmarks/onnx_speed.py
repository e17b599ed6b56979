"""onnxruntime vs our PyTorch forward: Depth Anything V2-S at 518 x 518, 2 threads, interleaved, medians
(deterministic random weights). Prints the relative error and the two times with their ratio."""
import sys
from pathlib import Path
import tempfile, time, statistics, torch
torch.set_num_threads(2)
from anydepth.foundation import DepthAnythingV2
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: official-layout random weights
from tests.support.weights import random_state_dict  # noqa: E402
from anydepth.export.onnx import export_onnx, OnnxModel
m = DepthAnythingV2("vits"); m.load_state_dict(random_state_dict("vits")); m.eval()
e = export_onnx(m, tempfile.gettempdir() + "/anydepth_bench_dav2s.onnx", (518, 518))
r = OnnxModel(e.path, m, threads=2)
x = torch.randn(1, 3, 518, 518)
with torch.no_grad():
    ref = m(x); got = r(x)
print("rel err", float((got - ref).abs().max() / ref.abs().max()))
tt, to = [], []
for i in range(8):
    t = time.perf_counter()
    with torch.no_grad(): m(x)
    tt.append(time.perf_counter() - t)
    t = time.perf_counter(); r(x); to.append(time.perf_counter() - t)
tt, to = tt[1:], to[1:]
print(f"torch {statistics.median(tt)*1000:.0f} ms  onnxruntime {statistics.median(to)*1000:.0f} ms  ratio {statistics.median(tt)/statistics.median(to):.2f}x")
