"""Builds csrc/ and python/bindings.cpp as host C++ against emu.h: the CUDA kernels, run on the CPU.

CI has nvcc but no GPU, so the kernels compile there and nothing runs them. This emulation runs each
block's threads as OS threads with real barriers and warp shuffles, which is enough to check their
numerics (indexing, masking, reductions, vector paths) on tiny shapes against the reference. It says
nothing about speed, memory ordering or alignment faults: a GPU still has the last word.
"""

import concurrent.futures
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CUDA_INCLUDE = Path("/usr/local/cuda/include")


def missing_tools() -> str | None:
    """Why the emulated extension cannot be built here, or None."""
    if shutil.which("g++") is None:
        return "g++ not found"
    if not (CUDA_INCLUDE / "cuda_runtime.h").exists():
        return f"CUDA headers not found in {CUDA_INCLUDE}"
    if importlib.util.find_spec("pybind11") is None:
        return "pybind11 not installed (the test extra brings it)"
    return None


def _as_host_cpp(source: Path, target: Path) -> None:
    """kernel<<<grid, block, smem, stream>>>(args) -> emu_launch(kernel, grid, block, smem, stream, args)."""
    text = re.sub(r"(\b[\w<>:]+)<<<(.*?)>>>\(", r"emu_launch(\1, \2, ", source.read_text(), flags=re.S)
    target.write_text(text)


def build(out_dir: Path) -> Path:
    """Compile the emulated ``_C`` into out_dir and return the folder to put on sys.path."""
    import pybind11

    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    for header in (*(ROOT / "csrc").glob("*.h"), *(ROOT / "csrc").glob("*.cuh")):
        shutil.copy(header, src)
    sources = [HERE / "stubs.cpp"]
    for cu in (ROOT / "csrc").glob("*.cu"):
        sources.append(src / f"{cu.stem}.cpp")
        _as_host_cpp(cu, sources[-1])

    flags = ["g++", "-std=c++20", "-O1", "-fPIC", "-w", f"-I{CUDA_INCLUDE}", f"-I{src}"]
    objects = [out_dir / f"{s.stem}.o" for s in sources]
    commands = [
        [*flags, "-include", str(HERE / "emu.h"), "-c", str(s), "-o", str(o)]
        for s, o in zip(sources, objects, strict=True)
    ]
    bindings = out_dir / "bindings.o"
    commands.append([
        *flags, f"-I{sysconfig.get_paths()['include']}", f"-I{pybind11.get_include()}",
        '-DCOSMOS_KERNELS_CUDA_COMPILER_VERSION="emulated"', '-DCOSMOS_KERNELS_CUDA_ARCHS="cpu"',
        "-c", str(ROOT / "python" / "bindings.cpp"), "-o", str(bindings),
    ])  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor() as pool:
        for done in pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), commands):
            if done.returncode:
                raise RuntimeError(f"emulated build failed:\n{' '.join(done.args)}\n{done.stderr[-4000:]}")
    package = out_dir / "pkg"
    package.mkdir(exist_ok=True)
    module = package / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(
        ["g++", "-shared", "-o", str(module), *map(str, objects), str(bindings), "-lpthread"], check=True
    )
    return package


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
