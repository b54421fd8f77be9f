"""``model.dtype: auto``: the hardware rule, the config round trip and what resd-learn prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resd_learner import precision
from resd_learner.cli import main as cli_main
from resd_learner.config import load_config
from resd_learner.precision import cpu_flags, resolve_dtype, with_resolved_dtype

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
AMD_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
INTEL_AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_flags_reads_the_first_flags_line_and_tolerates_no_such_line() -> None:
    assert cpu_flags(AMD_AVX2) == frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
    assert "amx_bf16" in cpu_flags(INTEL_AMX)
    assert cpu_flags("processor: 0\nmodel name: Apple M2\n") == frozenset()


def test_cpu_flags_of_an_unreadable_cpuinfo_is_empty(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "absent")
    assert cpu_flags() == frozenset()


@pytest.mark.parametrize(
    "cuda,cpuinfo,expected",
    [
        ((False, False), AMD_AVX2, "float32"),
        ((False, False), INTEL_AMX, "bfloat16"),
        ((False, False), "flags\t: avx512f avx512_bf16\n", "bfloat16"),
        ((True, True), AMD_AVX2, "bfloat16"),
        ((True, False), INTEL_AMX, "float32"),
    ],
)
def test_auto_picks_bfloat16_only_where_the_hardware_computes_it(cuda, cpuinfo, expected) -> None:
    dtype, why = resolve_dtype("auto", cuda=cuda, flags=cpu_flags(cpuinfo))
    assert dtype == expected and why


def test_an_explicit_dtype_is_kept_and_an_unknown_one_is_refused() -> None:
    assert resolve_dtype("bfloat16", cuda=(False, False), flags=frozenset()) == ("bfloat16", "set in the config")
    assert resolve_dtype("float32", cuda=(True, True), flags=frozenset())[0] == "float32"
    with pytest.raises(ValueError, match="model.dtype='half' is unknown"):
        resolve_dtype("half")


def test_with_resolved_dtype_replaces_auto_and_leaves_the_rest() -> None:
    config = load_config(CONFIGS / "quickstart.yaml", ["model.dtype=auto"])
    resolved = with_resolved_dtype(config, cuda=(False, False), flags=cpu_flags(INTEL_AMX))
    assert resolved.model.dtype == "bfloat16" and config.model.dtype == "auto"
    assert resolved.model.path == config.model.path and resolved.train == config.train
    fixed = load_config(CONFIGS / "quickstart.yaml", ["model.dtype=float32"])
    assert with_resolved_dtype(fixed) is fixed


def test_print_config_shows_the_resolved_dtype_and_why(monkeypatch, capsys) -> None:
    monkeypatch.setattr(precision, "cuda_bf16", lambda: (False, False))
    monkeypatch.setattr(precision, "CPUINFO", Path("/nonexistent/cpuinfo"))
    assert cli_main(["--config", str(CONFIGS / "quickstart.yaml"), "--print-config", "model.dtype=auto"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["model"]["dtype"] == "float32"
    assert "model.dtype=auto -> float32 (this CPU has neither AVX512-BF16 nor AMX-BF16" in captured.err
