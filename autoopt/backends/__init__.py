"""Inference backends: PyTorch eager, torch.compile, ONNX Runtime, OpenVINO, TensorRT.

The interface they implement is :class:`autoopt.plugins.Backend`. The backend modules are
imported by the registry on first lookup, not here, so that importing this package stays cheap.
"""
