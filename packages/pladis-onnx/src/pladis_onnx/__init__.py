"""pladis-onnx: export PLADIS (Eq. 15) text-to-image pipelines to ONNX and run them with ONNX Runtime.

    from pladis_onnx import export_pipeline, OnnxPipeline
    export_pipeline(pipe, "out/")                       # λ is the denoiser input `pladis_scale`
    image = OnnxPipeline.from_dir("out/")("a red circle", scale=2.0, seed=0).images[0]
"""

from .export import MIN_OPSET, export_denoiser, export_pipeline
from .export_attention import entmax_fixed, pladis_attention_export
from .pipeline import OnnxPipeline, OnnxPipelineOutput, resolve_providers

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
