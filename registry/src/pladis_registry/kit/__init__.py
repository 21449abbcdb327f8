"""The adapter kit: what an adapter needs besides its :class:`~pladis_registry.AdapterSpec`.

* :mod:`.tokenizers` -- offline tiny CLIP, Gemma and T5 tokenizers;
* :mod:`.builders` -- tiny text encoders, VAEs and :func:`~.builders.assemble` for random-weight pipelines;
* :mod:`.pipelines` -- :func:`~.pipelines.pipeline_loader`, an adapter's ``load`` from class names;
* :mod:`.loading` -- safetensors-first loading of pipelines, UNet checkpoints and LoRAs;
* :mod:`.distilled` -- guidance-distilled SDXL-family weights on a base pipeline.

The contract test every adapter runs is :func:`pladis_registry.testing.check_adapter`.
"""
