"""Benchmark: time and peak memory of the distillation loss, forward + backward, chunked vs naive.

Each variant runs in its own subprocess on identical seeded inputs (student/teacher hidden states
[1, N, H], student/teacher LM heads [V, H]; the student's hidden states and head get gradients):

* ``naive``: materialise full [N, V] student and teacher logits, full-vocabulary log-softmax, then
  top-k + tail + ratio clip + divergence (what the official code and most trainers do).
* ``logits``: materialise the [N, V] logits, then ``resd_learner.loss.f_divergence_loss``.
* ``chunked``: ``resd_learner.loss.chunked_f_divergence_loss`` straight from hidden states.

Peak memory on CPU is the growth of the worker's peak resident set size (``ru_maxrss``) from just
after the inputs exist to the end of backward; on CUDA it is ``torch.cuda.max_memory_allocated``
growth. The loss value and the hidden-state gradient norm are printed so the variants can be compared.

Usage: ``python benchmarks/loss.py`` (defaults: N=1024, H=1024, naive vs chunked, about 2.5 min on a
busy 2-core machine), or e.g.
``python benchmarks/loss.py --tokens 8192 --hidden 2560 --variants chunked``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

VARIANTS = ("naive", "logits", "chunked")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1024, help="response tokens N (default 1024)")
    parser.add_argument("--vocab", type=int, default=151_936, help="vocabulary V (Qwen3: 151936)")
    parser.add_argument("--hidden", type=int, default=1024, help="hidden size H (Qwen3-4B: 2560)")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--divergence", default="jsd", choices=("forward_kl", "reverse_kl", "jsd"))
    parser.add_argument("--variants", default="naive,chunked",
                        help=f"comma-separated subset of {VARIANTS} (default: naive,chunked)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--max-naive-gib", type=float, default=6.0,
                        help="skip naive/logits when their estimated peak (4 fp32 [N, V] tensors) exceeds "
                             "this many GiB (default 6)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("tokens", "vocab", "hidden", "top_k", "chunk_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    return args


def _naive_loss(student_logits, teacher_logits, *, top_k: int, divergence: str, low: float = 0.2,
                beta: float = 0.5):
    """Full-vocabulary reference: [N, V] log-softmax for both models, then top-k + tail, clip, divergence."""
    import torch

    log_p_full = torch.log_softmax(student_logits.float(), dim=-1)
    log_q_full = torch.log_softmax(teacher_logits.float(), dim=-1)
    ids = torch.topk(student_logits.detach(), top_k, dim=-1).indices
    log_p = log_p_full.gather(-1, ids)
    log_q = log_q_full.gather(-1, ids)

    def tail(x):
        return torch.log(-torch.expm1(torch.logsumexp(x, -1, keepdim=True).clamp(max=-1e-7)))

    log_p = torch.cat([log_p, tail(log_p)], -1)
    log_q = torch.cat([log_q, tail(log_q)], -1)
    log_q = torch.maximum(log_q, log_p.detach() + math.log(low))
    if divergence == "forward_kl":
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    if divergence == "reverse_kl":
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    log_m = torch.logaddexp(log_p + math.log(1 - beta), log_q + math.log(beta))
    return ((1 - beta) * (log_p.exp() * (log_p - log_m)).sum(-1)
            + beta * (log_q.exp() * (log_q - log_m)).sum(-1))


def _peak_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _worker(args: argparse.Namespace) -> dict[str, float]:
    import torch

    from resd_learner.loss import chunked_f_divergence_loss, f_divergence_loss

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    shape = (1, args.tokens, args.hidden)
    # logits with std ~4 (peaked like an LM's); the teacher is a perturbed copy of the student
    scale = 4.0 / math.sqrt(args.hidden)
    student_hidden = torch.randn(shape, generator=gen).to(device).requires_grad_()
    teacher_hidden = (student_hidden.detach() + 0.5 * torch.randn(shape, generator=gen).to(device))
    student_head = (torch.randn(args.vocab, args.hidden, generator=gen) * scale).to(device).requires_grad_()
    teacher_head = student_head.detach().clone()
    teacher_head.add_(torch.randn(args.vocab, args.hidden, generator=gen).to(device), alpha=0.5 * scale)
    mask = torch.ones(1, args.tokens, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = _peak_bytes(args.device)
    start = time.perf_counter()
    if args.worker == "chunked":
        per_token = chunked_f_divergence_loss(
            student_hidden, teacher_hidden, student_head, teacher_head, mask,
            chunk_size=args.chunk_size, top_k=args.top_k, divergence=args.divergence,
        )
    else:
        student_logits = student_hidden @ student_head.T
        with torch.no_grad():
            teacher_logits = teacher_hidden @ teacher_head.T
        if args.worker == "naive":
            per_token = _naive_loss(student_logits[0], teacher_logits[0], top_k=args.top_k,
                                    divergence=args.divergence)[None]
        else:
            per_token = f_divergence_loss(student_logits, teacher_logits, mask, top_k=args.top_k,
                                          divergence=args.divergence)
    loss = per_token.sum() / mask.sum()
    if device.type == "cuda":
        torch.cuda.synchronize()
    forward_s = time.perf_counter() - start
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    total_s = time.perf_counter() - start
    return {
        "forward_s": forward_s,
        "backward_s": total_s - forward_s,
        "total_s": total_s,
        "peak_delta_mib": (_peak_bytes(args.device) - baseline) / 2**20,
        "loss": loss.item(),
        "grad_norm_hidden": student_hidden.grad.norm().item(),
        "grad_norm_head": student_head.grad.norm().item(),
    }


def _run_variant(variant: str, argv: list[str]) -> dict[str, float]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--worker", variant],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant!r} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return
    full_gib = args.tokens * args.vocab * 4 / 2**30
    print(f"shapes: tokens N={args.tokens}, vocab V={args.vocab}, hidden H={args.hidden}, "
          f"top_k={args.top_k}, "
          f"chunk_size={args.chunk_size}, divergence={args.divergence}, device={args.device}, "
          f"threads={args.threads}; one fp32 [N, V] tensor = {full_gib:.2f} GiB")
    results = {}
    for variant in args.variants.split(","):
        if variant != "chunked" and 4 * full_gib > args.max_naive_gib:
            print(f"{variant:>8}: skipped, its estimated peak (4 x {full_gib:.1f} GiB) exceeds "
                  "--max-naive-gib")
            continue
        results[variant] = r = _run_variant(variant, argv)
        print(f"{variant:>8}: forward {r['forward_s']:7.2f} s  backward {r['backward_s']:7.2f} s  "
              f"total {r['total_s']:7.2f} s  peak +{r['peak_delta_mib']:9.1f} MiB  loss {r['loss']:.6f}  "
              f"|grad h| {r['grad_norm_hidden']:.6e}  |grad W| {r['grad_norm_head']:.6e}")
    if "naive" in results and "chunked" in results:
        naive, chunked = results["naive"], results["chunked"]
        print(f"chunked/naive: time x{chunked['total_s'] / naive['total_s']:.2f}, "
              f"peak memory x{chunked['peak_delta_mib'] / max(naive['peak_delta_mib'], 1e-9):.3f}, "
              f"loss rel. diff {abs(chunked['loss'] - naive['loss']) / max(abs(naive['loss']), 1e-12):.2e}")


if __name__ == "__main__":
    main()
