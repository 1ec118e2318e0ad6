"""Every op of the registry (cosmos_kernels/ops/registry.py) on every backend this machine can run, on
its example input, against its torch backend in float64; backends outside its list are refused; the
registry, the public ops and the benchmark cases name the same ops."""

import pytest
import torch
from conftest import TOLERANCE, backend_params, rel_error

from cosmos_kernels import BackendUnavailableError, ops, reference
from cosmos_kernels.ops.registry import OPS, op_spec
from cosmos_kernels.tools import benchmarking

# Tables and helpers, not ops with backends.
NOT_OPS = {"rope3d_cos_sin"}


def _to(value, device, dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        # RoPE tables stay float32, as the fast kernels take them.
        keep = value.dtype == torch.float32 and dtype != torch.float64 and value.dim() == 2
        return value.to(device) if keep else value.to(device, dtype)
    return value


def _outputs(result):
    return result if isinstance(result, tuple | list) else (result,)


def test_registry_lists_the_public_ops():
    assert set(OPS) == set(ops.__all__) - NOT_OPS
    for name, spec in OPS.items():
        assert spec.function is getattr(ops, name)
        assert spec.reference is getattr(reference, spec.reference.__name__)
        assert spec.preference and set(spec.preference) <= {"triton", "cuda"}, name
        assert spec.why, name
    with pytest.raises(ValueError, match="unknown op 'atention'; known: adaln_modulate"):
        op_spec("atention")


def test_benchmark_cases_come_from_the_registry():
    named = [case for spec in OPS.values() for case in spec.benchmark_cases]
    assert list(benchmarking.OP_CASES) == named
    built = benchmarking.cases("quick", torch.float32, "meta", only=["qk_norm_rope"])
    assert [case.name for case in built] == ["qk_norm_rope"]


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize(("device", "backend"), backend_params())
def test_op_matches_its_torch_backend(name, device, backend):
    spec = OPS[name]
    if backend != "torch" and backend not in spec.preference:
        pytest.skip(f"{name} has no {backend} backend")
    dtype = torch.float32
    args, kwargs = spec.example(torch.float64)
    expected = _outputs(spec.function(*args, **kwargs, backend="torch"))
    args = [_to(a, device, dtype) for a in args]
    kwargs = {k: _to(v, device, dtype) for k, v in kwargs.items()}
    got = _outputs(spec.function(*args, **kwargs, backend=backend))
    assert len(got) == len(expected)
    for out, ref in zip(got, expected, strict=True):
        # float32 math, tf32-free: within float32's tolerance of the float64 torch backend.
        assert rel_error(out.cpu(), ref) < 10 * TOLERANCE[dtype], name


@pytest.mark.parametrize("name", sorted(OPS))
def test_backends_outside_the_list_are_refused(name):
    spec = OPS[name]
    args, kwargs = spec.example(torch.float32)
    for backend in {"triton", "cuda"} - set(spec.preference):
        with pytest.raises(BackendUnavailableError, match=f"has no {backend} implementation"):
            spec.function(*args, **kwargs, backend=backend)
