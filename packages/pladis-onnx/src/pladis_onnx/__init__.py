"""pladis-onnx: export PLADIS (Eq. 15) text-to-image pipelines to ONNX and run them with ONNX Runtime.

    from pladis_onnx import export_pipeline, OnnxPipeline
    export_pipeline(pipe, "out/")                       # λ is the denoiser input `pladis_scale`
    image = OnnxPipeline.from_dir("out/")("a red circle", scale=2.0, seed=0).images[0]
"""

import importlib
from typing import Any

#: Public name → submodule; imported on first access, so that the CLI plugin (pladis_onnx.cli) stays light.
_EXPORTS = {
    "MIN_OPSET": "export", "export_denoiser": "export", "export_pipeline": "export",
    "entmax_fixed": "export_attention", "pladis_attention_export": "export_attention",
    "OnnxPipeline": "pipeline", "OnnxPipelineOutput": "pipeline", "resolve_providers": "pipeline",
}

__all__ = [
    "MIN_OPSET",
    "OnnxPipeline",
    "OnnxPipelineOutput",
    "entmax_fixed",
    "export_denoiser",
    "export_pipeline",
    "pladis_attention_export",
    "resolve_providers",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
