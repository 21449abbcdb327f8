"""Train the toy text-to-image model shipped in ``packages/pladis/src/pladis/toy_model`` (CPU, 2 cores; not run by CI).

    .venv/bin/python tools/toy/train.py --out packages/pladis/src/pladis/toy_model --threads 1   # the shipped run (5250 steps)

The shipped model is the step-5250 checkpoint (48.6 min at ~0.55 s/step with 1 thread on a 2-core machine
shared with other jobs; 2 OpenMP threads were 2-8x *slower* there because of the contention).  Loss values
were identical with 1 and 2 threads in a check of the first 150 steps; a full re-run with 1 thread
(``--steps 5250``, 2026-11-26) gave the shipped UNet and text encoder bit for bit (README).

What it trains (all real diffusers/transformers classes, saved as a ``StableDiffusionPipeline`` folder):

* ``UNet2DConditionModel`` in *pixel space*: 16 x 16 RGB, ``block_out_channels=(32, 64)``,
  ``layers_per_block=1``; down ``(DownBlock2D, CrossAttnDownBlock2D)``, mid ``UNetMidBlock2DCrossAttn``,
  up ``(CrossAttnUpBlock2D, UpBlock2D)``: self- and cross-attention at the 8 x 8 level in down, mid and up
  (none at 16 x 16, which would cost 2.3x per step on CPU), 4 heads, ``cross_attention_dim=64``;
  epsilon prediction.
* ``CLIPTextModel``: hidden 64, 2 layers, 4 heads, MLP 128, 16 positions, trained jointly from scratch;
  tokenizer ``pladis_registry.kit.tokenizers.tiny_clip_tokenizer`` (default words + plurals, max length 16).
* ``vae``: ``toy/vae.py``'s *identity* ``AutoencoderKL`` (one level, so ``vae_scale_factor`` 1; 3 latent
  channels; ``scaling_factor`` 1) whose weights are set by construction, not trained: decode(z) = z up to
  ~1e-4, so the pipeline's latents *are* the pixels.  It exists only so that the folder loads as an SD 1.x
  pipeline (PAG / SEG / PLADIS adapters included).
* Scheduler: DDPM cosine (``squaredcos_cap_v2``) betas, 1000 steps, for training; the folder ships the
  matching ``DDIMScheduler`` (``timestep_spacing="trailing"``; x0 clipped to [-1, 1] through
  ``thresholding=True, sample_max_value=1``, since SD pipelines reset ``clip_sample`` to False).

Data: ``toy/data.py`` renders a fresh batch every step from a seeded ``numpy`` generator (held-out
prompts excluded).  Hyper-parameters (defaults below): batch 64, AdamW lr 5e-4 (betas 0.9/0.99,
weight decay 0.01), 200 warm-up steps then constant, grad-norm clip 1, min-SNR-5 loss weighting, 10 %
captions dropped to "" (classifier-free guidance), EMA 0.999 of UNet + text encoder (the EMA weights are
what is saved).  Deterministic for a given ``--steps`` and thread count (``--threads 2``); ``--max-minutes``
stops early (after saving) if the wall-clock budget runs out, and a checkpoint of the EMA pipeline is written
every ``--save-every`` steps, so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toy import data  # noqa: E402

MAX_LENGTH = 16


def build(seed: int = 0):
    """Untrained (tokenizer, text_encoder, unet, ddpm scheduler), deterministically from ``seed``."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pladis_registry.kit.tokenizers import DEFAULT_WORDS, tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(vocab_words=DEFAULT_WORDS + data.EXTRA_WORDS, model_max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAX_LENGTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=64))
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(
        sample_size=data.SIZE, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn", up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=4, norm_num_groups=8)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                              prediction_type="epsilon", clip_sample=True)
    return tokenizer, text_encoder, unet, scheduler


def save_pipeline(out: Path, tokenizer, text_encoder, unet, scheduler) -> None:
    """Write the StableDiffusionPipeline folder (safetensors) atomically: ``out.tmp`` then rename."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from toy.vae import identity_vae

    # Pixel space: x0 predictions are clipped to [-1, 1] via ``thresholding`` (sample_max_value 1), because
    # StableDiffusionPipeline forces ``clip_sample=False``; without it the first "trailing" step (t = 999,
    # alpha_bar ~ 0 on the cosine schedule) blows x0 up.
    sampler = DDIMScheduler.from_config(scheduler.config, timestep_spacing="trailing", set_alpha_to_one=True,
                                        clip_sample=False, thresholding=True, sample_max_value=1.0,
                                        steps_offset=1)
    pipe = StableDiffusionPipeline(vae=identity_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=sampler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("outputs/toy-model"),
                    help="output folder (default: outputs/toy-model; the shipped model is pladis/toy_model)")
    ap.add_argument("--steps", type=int, default=5250)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--drop", type=float, default=0.1, help="caption dropout (classifier-free guidance)")
    ap.add_argument("--snr-gamma", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--max-minutes", type=float, default=85.0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormal floats can slow CPU training many-fold
    start = time.time()
    tokenizer, text_encoder, unet, scheduler = build(args.seed)
    ema = [copy.deepcopy(text_encoder).requires_grad_(False), copy.deepcopy(unet).requires_grad_(False)]
    params = list(text_encoder.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=args.snr_gamma) / snr  # min-SNR-gamma for epsilon prediction
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    pool = data.training_specs()
    prompts = sorted({data.prompt_of(s) for specs in pool.values() for s in specs} | {""})
    ids = dict(zip(prompts, tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH,
                                      truncation=True, return_tensors="pt").input_ids, strict=True))
    n_params = sum(p.numel() for p in params)
    print(f"params {n_params / 1e6:.2f} M; steps {args.steps}; batch {args.batch}", flush=True)
    log, step = [], 0
    for step in range(1, args.steps + 1):
        images, captions = data.batch(rng, args.batch, pool)
        drop = rng.random(args.batch) < args.drop
        tokens = torch.stack([ids["" if d else c] for c, d in zip(captions, drop, strict=True)])
        x0 = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        emb = text_encoder(tokens)[0]
        pred = unet(xt, t, emb).sample
        loss = (weight[t] * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, m in zip(ema, (text_encoder, unet), strict=True):
                for pe, pm in zip(e.parameters(), m.parameters(), strict=True):
                    pe.lerp_(pm, 1 - decay)
        log.append(loss.item())
        minutes = (time.time() - start) / 60
        if step % 50 == 0:
            print(f"step {step} loss {np.mean(log[-50:]):.4f} {minutes:.1f} min", flush=True)
        out_of_time = minutes > args.max_minutes
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            try:
                save_pipeline(args.out, tokenizer, ema[0], ema[1], scheduler)
            except Exception as error:  # a failed checkpoint must not end the run
                print(f"checkpoint at step {step} failed: {error!r}", flush=True)
                continue
            (args.out / "training.json").write_text(json.dumps(
                {"step": step, "minutes": round(minutes, 2), "loss_last_500": float(np.mean(log[-500:])),
                 **{k: str(v) for k, v in vars(args).items()}}, indent=1))
            print(f"saved {args.out} at step {step}", flush=True)
        if out_of_time:
            print(f"stopped at step {step}: --max-minutes {args.max_minutes} reached", flush=True)
            break


if __name__ == "__main__":
    main()
