"""The edge box installs the runtime without the build stack: importing it must not pull it in."""

import subprocess
import sys

BUILD_STACK = ("torch", "torchvision", "transformers", "optimum", "nncf", "timm", "sklearn")


def test_runtime_imports_without_the_build_stack() -> None:
    code = (
        "import sys, edgeft.runtime, edgeft.runtime.validation, edgeft.bundle, edgeft.errors, "
        "edgeft.serve, edgeft.bench; "
        f"print(','.join(m for m in {BUILD_STACK!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"runtime import loaded: {result.stdout.strip()}"


def test_the_check_itself_detects_a_torch_import() -> None:
    code = (
        f"import sys, edgeft.zoo; print(','.join(m for m in {BUILD_STACK!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "torch" in result.stdout
