"""Library noise is silenced by exact message and source; every other warning still shows."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunesmith.utils.quiet import quiet_library_noise


@pytest.fixture
def quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    kept = [list(lg.filters) for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        quiet_library_noise()
        yield
    for lg, filters in zip(loggers, kept):
        lg.filters[:] = filters


def test_transformers_gradient_checkpointing_warning_is_silenced_and_others_are_not(quiet: None,
                                                                                    tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings(record=True) as caught:
        assert model.is_gradient_checkpointing is False  # transformers warns here (peft reads this property)
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6 (from elsewhere)",
                      FutureWarning, stacklevel=1)
        warnings.warn("a real FutureWarning", FutureWarning, stacklevel=1)
    shown = [(str(w.message), w.filename) for w in caught]
    assert [m for m, _ in shown] == ["`is_gradient_checkpointing` is deprecated and will be removed in v6 "
                                     "(from elsewhere)", "a real FutureWarning"], shown


def test_only_torchao_kernel_lines_and_pytree_enum_notes_are_dropped(quiet: None,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    torchao, pytree = logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")
    torchao.warning("Failed to load /v/site-packages/torchao/_C_cutlass_90a.abi3.so: Could not load this library")
    torchao.warning("Failed to load /v/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not")
    pytree.warning("%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type. "
                   "Calling register_constant() on Enum subclasses is deprecated and will be an error in a future "
                   "release.", "<enum 'KernelPreference'>")
    torchao.warning("Skipping import of cpp extensions due to incompatible torch version.")
    pytree.warning("some other pytree warning")
    logging.getLogger("somewhere.else").warning("Failed to load /v/torchao/_C_cutlass_90a.abi3.so: x")
    assert [r.getMessage() for r in caplog.records] == [
        "Skipping import of cpp extensions due to incompatible torch version.", "some other pytree warning",
        "Failed to load /v/torchao/_C_cutlass_90a.abi3.so: x"]


def test_debug_shows_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_DEBUG", "1")
    before = list(logging.getLogger("torchao").filters)
    with warnings.catch_warnings():
        filters = list(warnings.filters)
        quiet_library_noise()
        assert warnings.filters == filters
    assert logging.getLogger("torchao").filters == before
