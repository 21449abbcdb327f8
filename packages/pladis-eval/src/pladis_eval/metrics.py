"""The metrics of ``pladis evaluate``, each from its well-kept library; none is computed by hand here.

========== ================================================ =========================================
name       library and default model                        score per image
========== ================================================ =========================================
clipscore  torchmetrics ``CLIPScore``, openai/clip-vit-      100 · max(cos(image, text), 0)
           large-patch14
pickscore  transformers CLIP, yuvalkirstain/PickScore_v1     the model's ``logits_per_image`` (scaled
           with the laion/CLIP-ViT-H-14 processor            cosine), as in PickScore's own code
imagereward ``image-reward`` (``ImageReward.load``)          its ``score(prompt, image)``
hps        open_clip ViT-H-14 with the HPSv2.1 checkpoint    100 · cos(image, text)
           (xswu/HPSv2, HPS_v2.1_compressed.pt)
toy-alignment tools/toy/scorer.py (the toy grammar)          its ``overall`` check, in %
fid        torchmetrics ``FrechetInceptionDistance`` with    one number per set (against --reference)
           torch-fidelity's Inception-v3 features
========== ================================================ =========================================

A missing package raises :class:`MetricUnavailable` naming it and the extra that installs it; a model
that is neither on disk nor downloadable raises it naming the model id and how to fetch it for offline use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Metric names in the order of the table's columns.
NAMES = ("clipscore", "pickscore", "imagereward", "hps", "toy-alignment", "fid")

DEFAULT_MODELS = {
    "clipscore": "openai/clip-vit-large-patch14",
    "pickscore": "yuvalkirstain/PickScore_v1",
    "imagereward": "ImageReward-v1.0",
    "hps": "xswu/HPSv2:HPS_v2.1_compressed.pt",
}
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
# What ``hf download`` needs for the models whose id is not a hub repository.
_HUB_FILES = {"imagereward": "THUDM/ImageReward ImageReward.pt med_config.json` and `hf download bert-base-uncased"}
_EXTRAS = {"clipscore": "clip", "pickscore": "pickscore", "imagereward": "imagereward", "hps": "hps", "fid": "fid"}
BATCH = 16
# Packages that need torchvision, and the extra of each.
_VISION = {"open_clip": "hps", "ImageReward": "imagereward", "torch_fidelity": "fid-inception"}
PAIR = ("its torchvision imports beside torch 2.14.1 (the extra vision pins that pair); `make install-vision` "
        "builds such a venv, .venv-vision")


class MetricUnavailable(RuntimeError):
    """A metric cannot run here: a package or a model download is missing (the message says which)."""


def require(module: str, metric: str, package: str | None = None, why: str = "") -> Any:
    """Import ``module`` or raise :class:`MetricUnavailable` naming the package and the extra."""
    try:
        return importlib.import_module(module)
    except Exception as error:  # ImportError, or a broken binary (torchvision beside another torch)
        extra = _EXTRAS.get(metric, "eval")
        reason = "is not installed" if isinstance(error, ModuleNotFoundError) else f"does not import ({error})"
        if module == "ImageReward" and "transformers" in str(error):
            why += ("; image-reward 1.5 (its latest release) is written for transformers 4 and imports names "
                    "that transformers 5 removed: it runs only in an environment with transformers < 5")
        if "torchvision" in str(error) or module == "torchvision":
            why += ("; PyPI's torchvision wheels are CUDA builds (their _C.so links libtorch_cuda.so) or need a "
                    "newer torch: install torchvision from PyTorch's CPU index to match a CPU torch")
        pair = ""
        if module in _VISION:
            extra, pair = f"{_VISION[module]},vision", f" ({PAIR})"
        raise MetricUnavailable(
            f"metric {metric!r} needs the package {package or module}, which {reason}{why}; "
            f'install it with pip install "pladis-eval[{extra}]"{pair}') from None


def model_error(metric: str, model_id: str, error: BaseException) -> MetricUnavailable:
    """The error for a model that could not be loaded: its id and how to pre-download it."""
    repo = _HUB_FILES.get(metric, model_id.split(":")[0])
    hint = (f"pre-download it with `hf download {repo}` while online (then HF_HUB_OFFLINE=1 "
            f"works), or pass --metric-model {metric}=LOCAL_DIR")
    return MetricUnavailable(f"metric {metric!r}: cannot load model {model_id!r} "
                             f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); {hint}")


@dataclass
class Metric:
    """A per-image metric: ``score(images, prompts)`` gives one float per image (higher is better)."""

    name: str
    scorer: Callable[[Sequence[Any], Sequence[str]], list[float]]
    model: str | None = None
    higher_is_better: bool = True
    per_image: bool = True

    def score(self, images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        if len(images) != len(prompts):
            raise ValueError(f"{self.name}: {len(images)} images but {len(prompts)} prompts")
        scores: list[float] = []
        for start in range(0, len(images), BATCH):
            scores += [float(s) for s in self.scorer(images[start:start + BATCH], prompts[start:start + BATCH])]
        return scores


@dataclass
class SetMetric:
    """A metric of a whole image set against a reference set (FID: lower is better)."""

    name: str
    distance: Callable[[Sequence[Any], Sequence[Any]], float]
    model: str | None = None
    higher_is_better: bool = False
    per_image: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def build(name: str, *, model: str | None = None, device: str = "cpu") -> Metric | SetMetric:
    """The metric ``name`` (one of :data:`NAMES`) with ``model`` (hub id or folder) instead of its default."""
    builders = {"clipscore": _clipscore, "pickscore": _pickscore, "imagereward": _imagereward, "hps": _hps,
                "toy-alignment": _toy_alignment, "fid": _fid}
    if name not in builders:
        raise ValueError(f"--metrics: unknown metric {name!r}; choose from {', '.join(NAMES)}")
    return builders[name](model, device)


def parse_metric_names(text: str) -> list[str]:
    names = list(dict.fromkeys(item.strip().lower() for item in text.split(",") if item.strip()))
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ValueError(f"--metrics: unknown metric {', '.join(unknown) or '(none)'}; choose from {', '.join(NAMES)}")
    return names


# --- images ---------------------------------------------------------------------------------------------


def to_uint8_tensor(images: Sequence[Any]) -> Any:
    """PIL images (one size) → a uint8 tensor (N, 3, H, W)."""
    import numpy as np
    import torch

    arrays = [np.asarray(image.convert("RGB")) for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# --- builders -------------------------------------------------------------------------------------------


def _clipscore(model: str | None, device: str) -> Metric:
    model_id = model or DEFAULT_MODELS["clipscore"]
    transformers = require("transformers", "clipscore")
    multimodal = require("torchmetrics.multimodal", "clipscore", "torchmetrics")

    class CLIPWithTensorFeatures(transformers.CLIPModel):
        """transformers ≥ 5 returns the projected features as ``.pooler_output`` of an output object;
        torchmetrics (1.9) expects the tensor itself."""

        def get_image_features(self, *args: Any, **kwargs: Any) -> Any:
            return _tensor(super().get_image_features(*args, **kwargs))

        def get_text_features(self, *args: Any, **kwargs: Any) -> Any:
            return _tensor(super().get_text_features(*args, **kwargs))

    def load() -> tuple[Any, Any]:  # torchmetrics takes a loader for models outside its list (local folders)
        return (CLIPWithTensorFeatures.from_pretrained(model_id).eval(),
                transformers.CLIPProcessor.from_pretrained(model_id))

    try:
        metric = multimodal.CLIPScore(model_name_or_path=load).to(device)
    except OSError as error:
        raise model_error("clipscore", model_id, error) from None

    def score(images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        out = []
        for image, prompt in zip(images, prompts, strict=True):  # the module averages: one image per update
            metric.reset()
            metric.update(to_uint8_tensor([image]).to(device), [prompt])
            out.append(float(metric.compute()))
        return out

    return Metric("clipscore", score, model_id)


def _tensor(features: Any) -> Any:
    return getattr(features, "pooler_output", features)


def _pickscore(model: str | None, device: str) -> Metric:
    transformers = require("transformers", "pickscore")
    import torch

    model_id = model or DEFAULT_MODELS["pickscore"]
    processor_id = model or PICKSCORE_PROCESSOR  # a local folder holds both
    try:
        processor = transformers.AutoProcessor.from_pretrained(processor_id)
    except OSError as error:
        raise model_error("pickscore", processor_id, error) from None
    try:
        clip = transformers.AutoModel.from_pretrained(model_id).eval().to(device)
    except OSError as error:
        raise model_error("pickscore", model_id, error) from None

    @torch.no_grad()
    def score(images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        inputs = processor(images=list(images), text=list(prompts), padding=True, truncation=True,
                           return_tensors="pt").to(device)
        return clip(**inputs).logits_per_image.diagonal().tolist()

    return Metric("pickscore", score, model_id)


def _imagereward(model: str | None, device: str) -> Metric:
    """ImageReward (``ImageReward.load``): its named model, a checkpoint file, or a folder holding a
    checkpoint (``*.pt``) and its ``med_config.json``. Its BLIP tokenizer is the hub's bert-base-uncased."""
    model_id = model or DEFAULT_MODELS["imagereward"]
    med_config = None
    path = Path(model_id)
    if path.is_dir():
        checkpoints = sorted(path.glob("*.pt"))
        if not checkpoints or not (path / "med_config.json").is_file():
            raise MetricUnavailable(f"metric 'imagereward': the folder {model_id!r} needs a checkpoint *.pt and "
                                    f"its med_config.json")
        model_id, med_config = str(checkpoints[0]), str(path / "med_config.json")
    reward = require("ImageReward", "imagereward", "image-reward")
    try:
        scorer = reward.load(model_id, device=device, med_config=med_config)
    except (OSError, RuntimeError, ValueError) as error:
        raise model_error("imagereward", model_id, error) from None

    def score(images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        return [float(scorer.score(prompt, image)) for image, prompt in zip(images, prompts, strict=True)]

    return Metric("imagereward", score, model or DEFAULT_MODELS["imagereward"])


def _hps(model: str | None, device: str) -> Metric:
    """HPSv2.1: open_clip's ViT-H-14 with the HPS checkpoint (``REPO:FILE`` on the hub, or a file path;
    a folder holding ``open_clip_config.json`` and a checkpoint is a local model of another size)."""
    open_clip = require("open_clip", "hps", "open-clip-torch")
    import torch

    model_id = model or DEFAULT_MODELS["hps"]
    try:
        arch, checkpoint = _hps_checkpoint(model_id)
        net, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device=device)
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        net.load_state_dict(state.get("state_dict", state))
    except (OSError, RuntimeError, KeyError) as error:
        raise model_error("hps", model_id, error) from None
    net.eval()
    tokenizer = open_clip.get_tokenizer(arch)

    @torch.no_grad()
    def score(images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        pixels = torch.stack([preprocess(image) for image in images]).to(device)
        image_features = net.encode_image(pixels, normalize=True)
        text_features = net.encode_text(tokenizer(list(prompts)).to(device), normalize=True)
        return (100 * (image_features * text_features).sum(-1)).tolist()

    return Metric("hps", score, model_id)


def _hps_checkpoint(model_id: str) -> tuple[str, str]:
    path = Path(model_id)
    if path.is_dir():  # a local open_clip model: its config registered under the folder's name
        import open_clip

        open_clip.add_model_config(path / "open_clip_config.json")
        return "open_clip_config", str(next(iter(sorted(path.glob("*.pt")))))
    if path.is_file():
        return "ViT-H-14", str(path)
    repo, _, filename = model_id.partition(":")
    from huggingface_hub import hf_hub_download

    return "ViT-H-14", hf_hub_download(repo, filename)


def _toy_alignment(model: str | None, device: str) -> Metric:
    scorer = toy_scorer()
    import numpy as np

    def score(images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        return [100.0 * scorer.score(np.asarray(image.convert("RGB")), prompt)["overall"]
                for image, prompt in zip(images, prompts, strict=True)]

    return Metric("toy-alignment", score, "tools/toy/scorer.py")


def toy_scorer() -> Any:
    """The toy grammar's scorer, ``tools/toy/scorer.py`` of the repository (``$PLADIS_TOY_TOOLS``: the
    folder holding ``toy/``)."""
    import os

    tools = Path(os.environ.get("PLADIS_TOY_TOOLS") or Path(__file__).resolve().parents[4] / "tools")
    if not (tools / "toy" / "scorer.py").is_file():
        raise MetricUnavailable(f"metric 'toy-alignment' needs the repository's tools/toy/scorer.py, not found "
                                f"under {str(tools)!r}; set PLADIS_TOY_TOOLS to the repository's tools folder")
    if str(tools) not in sys.path:
        sys.path.insert(0, str(tools))
    return importlib.import_module("toy.scorer")


def _fid(model: str | None, device: str, feature: Any = None) -> SetMetric:
    """FID (torchmetrics) on Inception-v3 pool features (torch-fidelity's; ``model``: a local file of its
    weights instead of the download), or on ``feature`` (a module mapping uint8 (N, 3, H, W) images to
    (N, D) features)."""
    image = require("torchmetrics.image.fid", "fid", "torchmetrics")
    weights = None
    if feature is None:
        if importlib.util.find_spec("torch_fidelity") is None:
            raise MetricUnavailable(
                "metric 'fid' needs the package torch-fidelity (torchmetrics' Inception-v3 features), which "
                f"needs torchvision; install them with pip install \"pladis-eval[fid-inception,vision]\" ({PAIR})")
        require("torch_fidelity", "fid", "torch-fidelity", " (it needs torchvision built for this torch)")
        feature = 2048
        if model is not None:
            if not Path(model).is_file():
                raise MetricUnavailable(f"metric 'fid': --metric-model fid={model}: no such file (a state dict "
                                        f"of torch-fidelity's FeatureExtractorInceptionV3)")
            weights = str(model)
    try:
        metric = image.FrechetInceptionDistance(feature=feature, normalize=False,
                                                feature_extractor_weights_path=weights).to(device)
    except (OSError, RuntimeError) as error:  # the weights' download (offline: URLError, an OSError)
        if feature != 2048:
            raise
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        raise MetricUnavailable(
            f"metric 'fid': cannot load the Inception-v3 weights ({type(error).__name__}: {error}); download "
            f"{URL_INCEPTION_V3} while online and pass --metric-model fid=FILE") from None

    def distance(images: Sequence[Any], reference: Sequence[Any]) -> float:
        metric.reset()
        like = images[0]  # the reference is resized to the generated images' size
        for start in range(0, len(reference), BATCH):
            metric.update(to_uint8_tensor(_same_size(reference[start:start + BATCH], like)).to(device), real=True)
        for start in range(0, len(images), BATCH):
            metric.update(to_uint8_tensor(images[start:start + BATCH]).to(device), real=False)
        return float(metric.compute())

    name = "inception-v3 (torch-fidelity)" if feature == 2048 else type(feature).__name__
    return SetMetric("fid", distance, weights or name)


def fid_with_features(feature: Any, device: str = "cpu") -> SetMetric:
    """FID on a feature extractor of one's own (tests: a tiny Inception-shaped network)."""
    return _fid(None, device, feature)


def _same_size(images: Sequence[Any], like: Any) -> list[Any]:
    from PIL import Image

    return [im if im.size == like.size else im.convert("RGB").resize(like.size, Image.BICUBIC) for im in images]
