"""Deployment formats of the networks: ONNX export (`export_onnx`) and its onnxruntime runner
(`OnnxModel`)."""

from anydepth.export.onnx import OnnxModel, export_onnx, onnx_backend

__all__ = ["OnnxModel", "export_onnx", "onnx_backend"]
