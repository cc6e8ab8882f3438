"""Write what experiments/digits_onnx.yaml runs on: the digits CNN as an ONNX file, and the
digits as an .npz, as a user who has only the ONNX file and the data would bring them.

    python experiments/make_digits_onnx.py [--out experiments/generated/digits_onnx]

Writes ``model.onnx`` (the bundled digits teacher, exported with a dynamic batch axis) and
``data/{train,calibration,evaluation}.npz``: the bundled workload's own splits (``image``:
1x8x8 float32 digits, named after the graph's input; ``label``: their classes), so that the
evaluation split holds no digit the teacher was trained on. (A single .npz would be dealt into
stratified splits by autoopt; it cannot know which samples trained the teacher.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "generated" / "digits_onnx"


def main(out: Path) -> None:
    from autoopt.artifacts import TorchArtifact
    from autoopt.onnx_export import export_onnx
    from autoopt.workloads import load_workload

    out.mkdir(parents=True, exist_ok=True)
    workload = load_workload("digits_cnn")
    export_onnx(TorchArtifact(workload.model), workload, out / "model.onnx")
    (out / "data").mkdir(exist_ok=True)
    for name in ("train", "calibration", "evaluation"):
        split = getattr(workload, name)
        np.savez(out / "data" / f"{name}.npz", image=split.inputs[0], label=split.targets)
    print(f"wrote {out / 'model.onnx'} and {out / 'data'}/{{train,calibration,evaluation}}.npz")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    main(parser.parse_args().out)
