"""Try the TorchScript ONNX exporter on the tiny FLUX and SD3 transformers, dense and with PLADIS applied,
and print the first error of each (docs/joint-attention.md records the outcome).

    .venv/bin/python tools/onnx_joint_attempt.py [--opset 17]
"""

from __future__ import annotations

import argparse
import io

import torch

import pladis
from pladis.adapters import default_registry


def first_call_kwargs(pipe, spec) -> dict:
    """The tensors of the pipeline's first denoiser call, by keyword."""
    captured: dict = {}

    def grab(module, args, kwargs):
        if not captured:
            captured.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    hook = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        pipe(prompt="a red circle", generator=torch.Generator().manual_seed(0),
             **{**spec.tiny_call_kwargs, "num_inference_steps": 1})
    finally:
        hook.remove()
    return captured


class ByPosition(torch.nn.Module):
    """The transformer called with its keyword tensors in a fixed order (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True)), return_dict=False)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    for name in ("flux", "sd3"):
        spec = default_registry().get(name).spec
        pipe = spec.tiny(seed=0)
        inputs = first_call_kwargs(pipe, spec)
        wrapper = ByPosition(pipe.transformer, list(inputs))
        for mode in ("dense", "pladis"):
            handle = pladis.apply(pipe) if mode == "pladis" else None
            try:
                torch.onnx.export(wrapper, tuple(inputs.values()), io.BytesIO(), input_names=list(inputs),
                                  opset_version=args.opset, dynamo=False)
                print(f"{name} {mode}: exported")
            except Exception as error:  # the point is to report it
                print(f"{name} {mode}: {type(error).__name__}: {str(error).splitlines()[0][:300]}")
            finally:
                if handle is not None:
                    handle.remove()


if __name__ == "__main__":
    main()
