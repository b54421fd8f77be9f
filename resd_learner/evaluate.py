"""Score a model on an environment's test split: mean@n and best@n of per-task and per-test-case accuracy.

``resd-eval`` samples ``n`` responses per prompt from a checkpoint / HF model directory (through
:func:`resd_learner.rollout.make_backend`) or from a model served behind an OpenAI-compatible URL
(vLLM's ``vllm serve``), scores them through the same task source the trainer uses
(:func:`resd_learner.task_sources.make_task_source`: :func:`resd_envs.verify` for resd ids,
``reset``/``step`` for any other gymnasium id), and writes one JSON file with the metrics and the
per-sample outcomes.

Metric definitions (values[p][i] is sample i of problem p, each in [0, 1]):

- ``mean@n``: mean over problems of the mean over that problem's samples.
- ``best@n`` (exact): mean over problems of the maximum over that problem's samples.
- ``best@n (bootstrap)``: the estimate the official RESD/verl validation reports. For each problem,
  draw ``resamples`` (1000) subsets of size n *with replacement* from its samples, take each
  subset's maximum and average them; then average over problems. Each problem's draws start from
  the same seed (42), as in the official validation code. It is always <= the exact best@n.

"Per-task accuracy" of a sample is 1.0 when every test case passes (``VerifyResult.passed``), else
0.0; "per-test-case accuracy" is the fraction of test cases passed (``VerifyResult.score``).
For Finer these are "all four tags right" and "fraction of tags right".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from resd_learner.config import EnvConfig, RolloutConfig, apply_overrides
from resd_learner.config import EvalConfig as ValidationConfig
from resd_learner.models import load_tokenizer
from resd_learner.precision import resolve_dtype
from resd_learner.rollout import Generation, GenerationBackend, make_backend
from resd_learner.task_sources import TaskSource, is_resd_id, make_task_source
from resd_learner.types import Score, Task

#: The two accuracies reported for every sample.
ACCURACIES: tuple[str, ...] = ("per_task", "per_test_case")

Values = Sequence[Sequence[float]]


# -- metric math (pure) -------------------------------------------------------------------------
def _check_values(values: Values, name: str) -> list[np.ndarray]:
    if len(values) == 0:
        raise ValueError(f"{name}: got no problems; pass one list of sample values per problem")
    rows = []
    for p, row in enumerate(values):
        arr = np.asarray(row, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            raise ValueError(f"{name}: problem {p} has no samples; every problem needs at least one value")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: problem {p} has a non-finite value {arr.tolist()}; scores must be finite")
        rows.append(arr)
    return rows


def mean_at_n(values: Values) -> float:
    """Mean over problems of the mean over each problem's samples.

    Args:
        values: ``values[p]`` holds the sample scores of problem p (any count >= 1 per problem).
    """
    rows = _check_values(values, "mean_at_n")
    return float(np.mean([row.mean() for row in rows]))


def best_at_n_exact(values: Values) -> float:
    """Mean over problems of the maximum over each problem's samples (the exact best@n)."""
    rows = _check_values(values, "best_at_n_exact")
    return float(np.mean([row.max() for row in rows]))


def best_at_n_bootstrap(
    values: Values, *, n: int | None = None, resamples: int = 1000, seed: int = 42
) -> float:
    """Bootstrap estimate of best@n, as reported by the official RESD validation.

    For every problem: a fresh ``numpy.random.RandomState(seed)`` draws ``resamples`` index sets of
    size ``n`` (default: the problem's own sample count) with replacement; the estimate is the mean
    of the subset maxima. The result is the mean over problems.

    Raises:
        ValueError: empty input, non-finite values, ``n < 1`` or ``resamples < 1``.
    """
    rows = _check_values(values, "best_at_n_bootstrap")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"best_at_n_bootstrap: n={n!r} must be a positive integer (or None for each problem's count)")
    if not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"best_at_n_bootstrap: resamples={resamples!r} must be a positive integer")
    per_problem = []
    for row in rows:
        size = row.size if n is None else n
        rng = np.random.RandomState(seed)
        maxima = [row[rng.choice(row.size, size=size, replace=True)].max() for _ in range(resamples)]
        per_problem.append(float(np.mean(maxima)))
    return float(np.mean(per_problem))


def summarize(
    scores: Mapping[str, Values], *, n: int, resamples: int = 1000, seed: int = 42
) -> dict[str, float]:
    """All metrics for each accuracy in ``scores`` (e.g. ``{"per_task": [[...], ...]}``).

    Keys: ``mean@{n}/<acc>``, ``best@{n}/<acc>`` (exact), ``best@{n}_bootstrap/<acc>``.
    """
    out: dict[str, float] = {}
    for acc, values in scores.items():
        out[f"mean@{n}/{acc}"] = mean_at_n(values)
        out[f"best@{n}/{acc}"] = best_at_n_exact(values)
        out[f"best@{n}_bootstrap/{acc}"] = best_at_n_bootstrap(values, n=n, resamples=resamples, seed=seed)
    return out


# -- data containers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalPrompt:
    """One test problem: its id, the chat messages the model sees and the task source's task."""

    task_id: str
    messages: list[dict[str, str]]
    task: Task


@dataclass(frozen=True)
class SampleScore:
    """The outcome of one sampled response."""

    per_task: float
    per_test_case: float
    reward: float
    error_type: str | None = None
    feedback: str = ""
    finish_reason: str | None = None
    response: str | None = None
    context_feedback: str = ""
    """What the trainer's teacher and reflector see (the env's privileged feedback when it offers one,
    e.g. the gold answer; else ``feedback``). Never written to eval outputs."""


_VALIDATION = ValidationConfig()


@dataclass
class EvalSettings:
    """Settings of one ``resd-eval`` run; sampling defaults are the trainer's validation defaults
    (:class:`resd_learner.config.EvalConfig`, the official validation sampling).

    ``seed`` seeds the sampling and, for non-resd gymnasium ids, is the reset seed of problem 0
    (problem i is ``reset(seed=seed + i)``).
    """

    env_id: str
    split: str = "test"
    n: int = _VALIDATION.n
    temperature: float = _VALIDATION.temperature
    top_p: float = _VALIDATION.top_p
    max_tokens: int = 2048
    stop: list[str] = field(default_factory=list)
    """Stop strings (as ``rollout.stop`` of the trainer)."""
    seed: int = 0
    limit: int | None = None
    batch_size: int = 8
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 42
    family_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError listing every bad field."""
        problems = []
        if not isinstance(self.n, int) or self.n < 1:
            problems.append(f"n={self.n!r}: samples per prompt must be an integer >= 1")
        if not self.temperature >= 0:
            problems.append(f"temperature={self.temperature!r}: must be >= 0")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p!r}: must be in (0, 1]")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            problems.append(f"max_tokens={self.max_tokens!r}: must be an integer >= 1")
        if not all(isinstance(x, str) and x for x in self.stop):
            problems.append(f"stop={self.stop!r}: stop strings must be non-empty")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            problems.append(f"limit={self.limit!r}: must be an integer >= 1 or None (all prompts)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size!r}: must be an integer >= 1")
        if not isinstance(self.bootstrap_resamples, int) or self.bootstrap_resamples < 1:
            problems.append(f"bootstrap_resamples={self.bootstrap_resamples!r}: must be an integer >= 1")
        if problems:
            raise ValueError("invalid evaluation settings:\n  - " + "\n  - ".join(problems))


# -- prompts and scoring ------------------------------------------------------------------------
def task_source(config: EvalSettings) -> TaskSource:
    """The trainer's task source for ``config.env_id`` (``config.split`` both as train and val split)."""
    env = EnvConfig(id=config.env_id, train_split=config.split, val_split=config.split,
                    kwargs=dict(config.family_kwargs), train_seed=config.seed, val_seed=config.seed)
    return make_task_source(env)


def load_prompts(config: EvalSettings, source: TaskSource | None = None) -> list[EvalPrompt]:
    """The problems of ``config.split`` (first ``config.limit`` of them), in split order.

    resd ids read the task rows; any other gymnasium id gets ``limit`` problems, problem i being
    ``env.reset(seed=config.seed + i)`` (its observation must be a string).
    """
    if config.limit is None and not is_resd_id(config.env_id):
        raise ValueError(f"{config.env_id!r} is not a resd id, so its problems come from env.reset(seed=...): "
                         "pass --limit K to say how many problems to draw")
    source = source or task_source(config)
    tasks = source.tasks(config.split, config.limit)
    return [EvalPrompt(t.example_id, [dict(m) for m in t.messages], t) for t in tasks]


def score_responses(
    config: EvalSettings, prompts: Sequence[EvalPrompt], responses: Sequence[Sequence[str]],
    source: TaskSource | None = None,
) -> list[list[SampleScore]]:
    """Score ``responses[p][i]`` on ``prompts[p]``; returns the same nesting.

    Per-task accuracy is ``passed``, per-test-case accuracy the fraction of tests passed (the task
    source's ``Score``; for other gymnasium ids ``info["passed"]`` / ``info["score"]`` when present,
    else ``reward >= 1`` and the reward itself).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"score_responses got {len(prompts)} prompts but {len(responses)} response lists")
    source = source or task_source(config)
    flat_tasks = [p.task for p, rs in zip(prompts, responses) for _ in rs]
    flat = [r for rs in responses for r in rs]
    scores = iter(source.score(flat_tasks, flat))
    return [[_sample_score(next(scores)) for _ in rs] for rs in responses]


def _sample_score(score: Score) -> SampleScore:
    return SampleScore(float(score.passed), float(score.score), float(score.reward), score.error_type, score.feedback,
                       context_feedback=score.context_feedback)


# -- generation ---------------------------------------------------------------------------------
class OpenAIChatBackend:
    """Generation from an OpenAI-compatible ``/chat/completions`` endpoint (e.g. ``vllm serve``).

    Same ``generate`` signature as the backends of :mod:`resd_learner.rollout`; token ids and
    log-probs are not requested (``Generation.token_ids`` is empty).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url={base_url!r}: give the server's URL, e.g. http://localhost:8000/v1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s

    def generate(
        self,
        messages_batch: Sequence[Sequence[Mapping[str, str]]],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> list[list[Any]]:
        """``n`` completions per message list, one request per prompt (``stop``: the API's stop strings)."""
        out = []
        for index, messages in enumerate(messages_batch):
            body = {
                "model": self.model,
                "messages": [dict(m) for m in messages],
                "n": n,
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": max_tokens,
            }
            if seed is not None:
                body["seed"] = seed + index
            if stop:
                body["stop"] = list(stop)
            reply = self._post(body)
            choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
            if len(choices) != n:
                raise RuntimeError(f"{self.url} returned {len(choices)} choices for n={n}; the server ignored 'n'")
            out.append(
                [
                    SimpleNamespace(
                        text=c.get("message", {}).get("content") or "",
                        token_ids=[],
                        logprobs=None,
                        finish_reason=c.get("finish_reason"),
                    )
                    for c in choices
                ]
            )
        return out

    def push_weights(self, named_tensors: Any) -> None:
        raise NotImplementedError("a served model cannot receive weights; restart the server with the new checkpoint")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise RuntimeError(f"{self.url} answered HTTP {err.code}: {detail}") from err
        except urllib.error.URLError as err:
            raise RuntimeError(f"cannot reach {self.url} ({err.reason}); is the server running?") from err


def resolve_model_dir(path: str | Path) -> Path:
    """The HF model directory (with ``config.json``) inside ``path``.

    Accepts an HF directory itself, or a checkpoint directory holding exactly one HF directory
    among its sub-directories (searched two levels deep).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model path {root} is not a directory; pass an HF model dir or RUN_DIR/checkpoints/step_<N>")
    if (root / "config.json").is_file():
        return root
    found = sorted({p.parent for p in root.glob("*/config.json")} | {p.parent for p in root.glob("*/*/config.json")})
    if len(found) == 1:
        return found[0]
    if not found and (root / "checkpoints").is_dir():
        raise FileNotFoundError(f"{root} looks like a run directory; pass one of its checkpoints, e.g. {root}/checkpoints/step_<N>")
    if not found:
        raise FileNotFoundError(f"no config.json in {root} or its sub-directories; it is not an HF model or checkpoint")
    raise FileNotFoundError(f"several model directories under {root}: {', '.join(map(str, found))}; pass one of them")


def make_model_backend(
    model_dir: Path, backend: str = "hf", *, max_model_len: int = 8192, dtype: str = "float32"
) -> GenerationBackend:
    """The learner's generation backend (``"hf"`` or ``"vllm"``) for ``model_dir``, via :func:`resd_learner.rollout.make_backend`."""
    rollout = RolloutConfig(backend=backend, max_model_len=max_model_len)
    return make_backend(rollout, model_dir, load_tokenizer(model_dir), dtype=dtype)


def generate_all(
    backend: GenerationBackend, config: EvalSettings, prompts: Sequence[EvalPrompt], *,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Generation]]:
    """``config.n`` generations per prompt, in batches of ``config.batch_size`` prompts."""
    out: list[list[Generation]] = []
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        gens = backend.generate(
            [p.messages for p in batch],
            n=config.n,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=config.seed + start,
            **({"stop": tuple(config.stop)} if config.stop else {}),  # backends without stop support still work
        )
        if len(gens) != len(batch) or any(len(g) != config.n for g in gens):
            raise RuntimeError(
                f"the generation backend returned {[len(g) for g in gens]} samples for {len(batch)} prompts "
                f"with n={config.n}; expected {config.n} per prompt"
            )
        out.extend(gens)
        if progress is not None:
            progress(len(out), len(prompts))
    return out


@dataclass
class EvalResult:
    """Metrics plus every sample's outcome."""

    config: dict[str, Any]
    metrics: dict[str, float]
    problems: list[dict[str, Any]]
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    backend: GenerationBackend, config: EvalSettings, *, save_responses: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Generate, score and summarise; ``backend`` is anything with the rollout ``generate`` signature."""
    config.validate()
    start = time.perf_counter()
    source = task_source(config)
    prompts = load_prompts(config, source)
    gens = generate_all(backend, config, prompts, progress=progress)
    texts = [[g.text for g in row] for row in gens]
    scores = score_responses(config, prompts, texts, source)
    metrics = summarize(
        {acc: [[getattr(s, acc) for s in row] for row in scores] for acc in ACCURACIES},
        n=config.n,
        resamples=config.bootstrap_resamples,
        seed=config.bootstrap_seed,
    )
    metrics["num_problems"] = float(len(prompts))
    problems = []
    for prompt, row, gen_row in zip(prompts, scores, gens):
        samples = []
        for s, g in zip(row, gen_row):
            item = asdict(s)
            item.pop("context_feedback")  # may hold the gold answer: for teachers only
            if not save_responses:
                item.pop("feedback")
            item["finish_reason"] = getattr(g, "finish_reason", None)
            item["response"] = g.text if save_responses else None
            samples.append(item)
        problems.append({"task_id": prompt.task_id, "samples": samples})
    return EvalResult(asdict(config), metrics, problems, time.perf_counter() - start)


# -- CLI ----------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="resd-eval",
        description="Score a model on an env's split: mean@n and best@n (exact and bootstrap) of "
        "per-task and per-test-case accuracy.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="HF model dir or RUN_DIR/checkpoints/step_<N>")
    source.add_argument("--url", help="OpenAI-compatible base URL of a served model, e.g. http://localhost:8000/v1")
    parser.add_argument("--served-model", default=None, help="model name to send with --url (default: the server's first)")
    parser.add_argument("--api-key", default=None, help="bearer token for --url")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend for --model")
    parser.add_argument("--max-model-len", type=int, default=8192, help="prompt + response token limit (--model)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="float32",
                        help="weights dtype (--model); auto = bfloat16 where the CPU/GPU computes it, else float32")
    parser.add_argument("--env", required=True, help="env id, e.g. resd/Manufactoria-Has-v0 (any gymnasium text env)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=_VALIDATION.n, help="samples per prompt")
    parser.add_argument("--temperature", type=float, default=_VALIDATION.temperature)
    parser.add_argument("--top-p", type=float, default=_VALIDATION.top_p)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop string (repeatable), as the trainer's rollout.stop, e.g. --stop '</answer>'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first K prompts")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--bootstrap-resamples", type=int, default=1000)
    parser.add_argument("--bootstrap-seed", type=int, default=42)
    parser.add_argument("--family-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra env/family constructor kwarg (value parsed as YAML, like resd-learn overrides)")
    parser.add_argument("--save-responses", action="store_true", help="keep response texts in the output JSON")
    parser.add_argument("--out", default=None, help="write the result JSON here (default: print only)")
    return parser.parse_args(argv)


def _family_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (values parsed as YAML, as ``resd-learn`` overrides are) into a mapping."""
    problems: list[str] = []
    kwargs = apply_overrides({}, [str(i) for i in items], problems)
    if problems:
        raise ValueError("--family-kwarg: " + "; ".join(problems))
    return kwargs


def _served_model_name(base_url: str, api_key: str | None) -> str:
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read().decode()).get("data", [])
    except (urllib.error.URLError, json.JSONDecodeError) as err:
        raise RuntimeError(f"cannot list models at {base_url}/models ({err}); pass --served-model") from err
    if not data:
        raise RuntimeError(f"{base_url}/models lists no model; pass --served-model")
    return str(data[0]["id"])


def format_metrics(metrics: Mapping[str, float]) -> str:
    """A small aligned text table of the metrics (accuracies as percentages)."""
    lines = []
    for key, value in metrics.items():
        shown = f"{int(value)}" if key == "num_problems" else f"{100 * value:6.2f}%"
        lines.append(f"{key:<32} {shown}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``resd-eval``; returns the process exit code."""
    args = _parse_args(argv)
    try:
        config = EvalSettings(
            env_id=args.env,
            split=args.split,
            n=args.n,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            stop=list(args.stop),
            seed=args.seed,
            limit=args.limit,
            batch_size=args.batch_size,
            bootstrap_resamples=args.bootstrap_resamples,
            bootstrap_seed=args.bootstrap_seed,
            family_kwargs=_family_kwargs(args.family_kwarg),
        )
        config.validate()
        if args.url:
            name = args.served_model or _served_model_name(args.url, args.api_key)
            backend: GenerationBackend = OpenAIChatBackend(args.url, name, api_key=args.api_key)
            source = {"url": args.url, "served_model": name}
        else:
            model_dir = resolve_model_dir(args.model)
            backend = make_model_backend(model_dir, args.backend, max_model_len=args.max_model_len,
                                         dtype=resolve_dtype(args.dtype)[0])
            source = {"model": str(model_dir), "backend": args.backend}
        result = evaluate(
            backend,
            config,
            save_responses=args.save_responses,
            progress=lambda done, total: print(f"generated {done}/{total} prompts", file=sys.stderr),
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"resd-eval: error: {err}", file=sys.stderr)
        return 2
    result.config["source"] = source
    print(format_metrics(result.metrics))
    print(f"wall time: {result.wall_s:.1f} s")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
