"""How much of an optimizer step reaches a bf16 model that trains with fp32 master weights.

DeepSpeed's bf16 mode applies each AdamW step to fp32 master weights and copies them, rounded to
bf16, into the model that computes (and that vLLM samples from). A change smaller than half a bf16
unit in the last place of a weight is rounded away until the master has drifted far enough. This
script applies ``--steps`` steps of size ``lr`` (Adam's first step is ``lr * g / (|g| + eps)``, i.e.
``lr`` times the sign of the gradient, so each element here gets a random sign, the same at every
step) to a model's weights rounded to bf16, and prints per parameter group (matrices, embedding,
norm gains) the fraction of elements whose bf16 value changed and the norm of the bf16 change
against the norm of the fp32 change (1.0: the bf16 model moved as far as a float32 one would).

    python benchmarks/bf16_step_rounding.py [--model DIR] [--lr 2e-4 1e-4] [--steps 1 2 4 8] [--seed 0] [--json]

``--model`` is a directory with ``model.safetensors`` (default: SmolLM2-135M-Instruct converted by
resd-learn into the cache, ``resd_learner.models.smollm2_model_dir``). Reads weights only; CPU, seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def group_of(name: str) -> str:
    """``embedding``, ``norm`` (RMSNorm gains) or ``matrix`` (every other weight)."""
    if "norm" in name:
        return "norm"
    return "embedding" if "embed" in name else "matrix"


def step_rounding(weights: dict[str, torch.Tensor], lr: float, steps: int, seed: int) -> dict[str, dict[str, float]]:
    """Per group: ``elements``, ``changed`` (fraction whose bf16 value moved) and ``norm_ratio``
    (norm of the bf16 model's change / norm of the fp32 masters' change) after ``steps`` steps of
    ``lr`` times a fixed random sign per element, starting from the weights rounded to bf16."""
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, list[float]] = {}
    for name in sorted(weights):
        start = weights[name].to(torch.bfloat16).float()
        sign = torch.randint(0, 2, start.shape, generator=generator).float() * 2 - 1
        master_change = lr * steps * sign
        model_change = (start + master_change).to(torch.bfloat16).float() - start
        acc = sums.setdefault(group_of(name), [0.0, 0.0, 0.0, 0.0])
        acc[0] += float(master_change.square().sum())
        acc[1] += float(model_change.square().sum())
        acc[2] += float((model_change != 0).sum())
        acc[3] += start.numel()
    return {group: {"elements": int(acc[3]), "changed": acc[2] / acc[3], "norm_ratio": (acc[1] / acc[0]) ** 0.5}
            for group, acc in sorted(sums.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="directory with model.safetensors (default: the cached SmolLM2-135M)")
    parser.add_argument("--lr", type=float, nargs="+", default=[2e-4, 1e-4])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    from safetensors.torch import load_file

    if args.model:
        model_dir = Path(args.model)
    else:
        from resd_learner.models import smollm2_model_dir

        model_dir = smollm2_model_dir()
    path = model_dir / "model.safetensors"
    if not path.is_file():
        parser.error(f"--model {model_dir}: no model.safetensors there")
    weights = {name: tensor.float() for name, tensor in load_file(str(path)).items()}
    rows = []
    for lr in args.lr:
        for steps in args.steps:
            for group, stats in step_rounding(weights, lr, steps, args.seed).items():
                rows.append({"lr": lr, "steps": steps, "group": group, **stats})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"model: {path}")
    print("| lr | steps | group | elements | bf16 value changed | bf16 change / fp32 change (norm) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['lr']:g} | {row['steps']} | {row['group']} | {row['elements']:,} | {row['changed']:.3f} | "
              f"{row['norm_ratio']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
