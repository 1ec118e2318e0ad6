"""The console script: info and a quick bench run end to end, and the peers the bench finds."""

import json
import subprocess
import sys

from cosmos_kernels import cli
from cosmos_kernels.ops.registry import OPS


def test_info_json_reports_versions_and_auto_choices(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["torch"]
    assert set(info["auto_backend"]) == set(OPS)
    if info["device"] == "cpu":  # the interpreter is never auto's choice
        assert set(info["auto_backend"].values()) == {"torch"}


def test_info_table_runs_as_console_script():
    done = subprocess.run(
        [sys.executable, "-m", "cosmos_kernels.cli", "info"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "torch" in done.stdout and "adaln_modulate" in done.stdout


def test_bench_quick_times_every_op(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("cosmos_kernels.tools.benchmarking.ROTATE_BELOW_BYTES", 0)
    report = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--no-compile", "--reps", "2", "--json", str(report)]) == 0
    # Piped output (as here) keeps whole names: rich would cut cells to fit 80 columns.
    table = capsys.readouterr().out
    assert "gated_residual_adaln" in table and "…" not in table
    written = json.loads(report.read_text())
    # The interpreter runs fixed tiles: nothing autotuned here, but the report says so.
    assert written["autotuned"] == {}
    results = written["results"]
    assert [r["op"] for r in results] == [
        "adaln_modulate",
        "gated_residual_adaln",
        "haar3d_analysis",
        "haar3d_synthesis",
        "group_norm_silu",
        "rms_norm_channels_silu",
        "qk_norm_rope",
        "attention fwd",
        "attention fwd+bwd",
        "attention-8bit qk-int8 fwd",
        "attention-8bit qk-int8-pv-fp8 fwd",
        "tiny-cv8x8x8 encode",
        "tiny-cv8x8x8 decode",
        "dit block fwd",
        "dit block fwd+bwd",
    ]
    for r in results:
        assert all(seconds > 0 for seconds in r["seconds"].values())
    assert all(r["flops"] > 0 for r in results if r["op"].startswith(("attention", "dit block")))


def test_bench_only_builds_the_asked_cases(tmp_path, capsys):
    report = tmp_path / "bench.json"
    args = ["bench", "--quick", "--no-compile", "--reps", "1", "--json", str(report)]
    assert cli.main([*args, "--only", "attention,haar3d_synthesis"]) == 0
    ops = [r["op"] for r in json.loads(report.read_text())["results"]]
    assert ops == ["haar3d_synthesis", "attention fwd", "attention fwd+bwd"]
    assert cli.main([*args, "--only", "attention fwd+bwd"]) == 0
    assert [r["op"] for r in json.loads(report.read_text())["results"]] == ["attention fwd+bwd"]
    assert cli.main([*args, "--only", "atention"]) == 2
    assert "atention" in capsys.readouterr().out


def test_bench_finds_installed_flash_attn_packages(monkeypatch):
    """flash_attn (FA2) and flash_attn_interface (FA3) become attention peers when importable; both take
    BSHD, and a (out, lse) return is unpacked."""
    import importlib.machinery
    import types

    import torch
    import torch.nn.functional as F

    from cosmos_kernels import ops
    from cosmos_kernels.tools import benchmarking

    def flash_attn_func(q, k, v):
        out = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
        return out, None

    for module in ("flash_attn", "flash_attn_interface"):
        fake = types.ModuleType(module)
        fake.__spec__ = importlib.machinery.ModuleSpec(module, None)
        fake.flash_attn_func = flash_attn_func
        monkeypatch.setitem(sys.modules, module, fake)
    found = benchmarking.flash_attn_functions()
    assert set(found) == {"flash_attn2", "flash_attn3"}
    q, k, v = torch.randn(3, 1, 24, 2, 32).unbind(0)
    weight = torch.ones(32)
    cos, sin = ops.rope3d_cos_sin(2, 3, 4, 32)
    inputs = (q, k, v, weight, weight, cos, sin)
    peer = benchmarking._flash_attn_eager(*inputs, flash_attn_func=found["flash_attn3"])
    expected = benchmarking._sdpa_eager(*inputs)
    assert torch.allclose(peer, expected)
