"""Known-harmless messages from the libraries edgeft drives, silenced where they arise.

Each helper is a context manager around the calls that trigger one library's chatter, so a
filter holds only there and only for that library: edgeft's own warnings (the ``edgeft`` loggers,
the console's ``warning:`` lines) and every other library's messages stay visible, and a newcomer
reading the demo's output sees edgeft's steps, not pages of notices that need no action.
Libraries are imported inside the helpers: this module stays cheap to import.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

# torch.utils.cpp_extension logs this when it finds a CUDA toolkit but no usable GPU: on a
# CPU-only host it needs no action (NNCF's torch side imports that module).
_CUDA_PROBE_LOGGER = "torch.utils.cpp_extension"
# NNCF's fake quantizers, where their ranges are read during tracing (``filterwarnings`` matches
# the module a warning is attributed to). Not all of NNCF: its hooks run every tensor method of
# the model inside a QAT model, so the model's own tracing warnings are attributed to NNCF too.
_NNCF_QUANTIZERS = r"nncf\.torch\.quantization\.layers$"


@contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    """Raise one named logger's threshold within the block (records below ``level`` are
    dropped at that logger), then put its own level back, even when the block raises."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)


@contextmanager
def quiet_nncf() -> Iterator[None]:
    """Hide NNCF's INFO lines (ignored-scope counts, extension compiles, accuracy-control
    steps): edgeft reports each step's outcome itself. NNCF's warnings still show. Also torch's
    "No CUDA runtime is found" probe, logged once when NNCF first imports
    ``torch.utils.cpp_extension`` (its torch side does; so does its OpenVINO side on transformer
    graphs)."""
    with _logger_level("nncf", logging.WARNING), _logger_level(_CUDA_PROBE_LOGGER, logging.ERROR):
        yield


@contextmanager
def quiet_nncf_torch() -> Iterator[None]:
    """Around NNCF's torch side (its import, QAT calibration, the QAT ONNX export): besides
    ``quiet_nncf``, hide the ``TracerWarning``s NNCF's quantizers raise when their ranges are
    read with ``.item()`` during tracing: the ranges are fixed at export, so recording them as
    constants is what edgeft wants."""
    from torch.jit import TracerWarning

    with warnings.catch_warnings(), quiet_nncf():
        warnings.filterwarnings("ignore", category=TracerWarning, module=_NNCF_QUANTIZERS)
        yield


@contextmanager
def quiet_onnx_export() -> Iterator[None]:
    """Around ``torch.onnx.export``: hide the TracerWarning transformers' attention-mask helper
    raises for the ``torch.tensor(1.0)`` it subtracts the mask from (a constant, as the warning
    itself says). Every other tracing warning still shows: it may mean a graph fixed to the
    example's shapes."""
    from torch.jit import TracerWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="torch.tensor results are registered as constants",
            category=TracerWarning,
            module=r"transformers\.modeling_attn_mask_utils$",
        )
        yield


class _OnnxRuntimeChatter(logging.Filter):
    """Drops records below ERROR that ONNX Runtime's quantization code logs itself."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(self.folder)


@contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Silence ONNX Runtime's quantizer, which warns per node through the module-level
    ``logging.warning`` and ``print``s its histogram calibrators' progress to stdout: a filter on
    the root logger sees only records logged to the root itself (not those propagated from named
    loggers such as edgeft's), and passes every record from other code, so the root's level and
    everyone else's messages stay as they are; stdout is set aside only for the block (the
    quantizer runs in the calling thread, between edgeft's own progress lines)."""
    import onnxruntime.quantization

    root = logging.getLogger()
    chatter = _OnnxRuntimeChatter(os.path.dirname(onnxruntime.quantization.__file__) + os.sep)
    root.addFilter(chatter)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(chatter)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' notices about unused or newly initialised weights: a new head and a
    dropped pooler are what edgeft asks for."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
