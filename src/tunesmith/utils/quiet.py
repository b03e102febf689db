"""Known, harmless library noise, silenced by its exact message (``TUNESMITH_DEBUG=1`` shows it all).

Each entry names the library, the message and why it tells a tunesmith user nothing. Filters match
the message and the logger or module that emits it, so every other warning of those libraries
still shows. ``quiet_library_noise()`` is called by the ``tunesmith`` command and the web UI before
any of these libraries is imported.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

# transformers 5 deprecates PreTrainedModel.is_gradient_checkpointing (for is_activation_checkpointing);
# peft's PeftModel.__init__ and trl still read the old name, so every LoRA run printed the warning.
GRADIENT_CHECKPOINTING_WARNING = r"`is_gradient_checkpointing` is deprecated and will be removed in v6"

# torchao's wheel ships CUDA kernels (_C_cutlass_90a, _C_mxfp8) that cannot load beside a CPU torch;
# torchao logs one line per file and carries on. tunesmith's int8 export uses none of them.
TORCHAO_KERNEL_FAILED = re.compile(r"Failed to load \S*torchao[/\\]_C_\w+\S*\.so: ")

# Importing torchao registers its Enums with torch's pytree, which torch 2.13 reports as deprecated
# (a message for torchao's developers, once per Enum).
PYTREE_ENUM = re.compile(r"<enum '\w+'> is an Enum subclass and is now natively supported by torch\.compile "
                         r"as an opaque value type\. Calling register_constant\(\) on Enum subclasses is deprecated")


# bitsandbytes (QLoRA) on a CPU with AVX-512-BF16 tries to fetch a faster 4-bit kernel from the hub
# ('kernels' package) when it is imported, which peft does for every command, and logs the failure; its
# own CPU kernel is used instead. Its 8-bit matmul logs one cast warning per layer per forward pass.
BNB_KERNELS_HUB = re.compile(r"Failed to load CPU gemm_4bit_forward from kernels-community: ")
BNB_INT8_CAST = re.compile(r"MatMul8bitLt: inputs will be cast from \S+ to float16 during quantization")

# DeepSpeed, once installed (deepspeed: z2 / z3), is imported by accelerate into every training process, and on
# a machine without a GPU says so at each start; its CPU backend is what tunesmith expects there.
DEEPSPEED_CPU = re.compile(r"Setting accelerator to CPU\. If you have GPU or other accelerator, we were unable")


class _DropMatching(logging.Filter):
    """Drops the records of one logger whose message matches a pattern."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


_LOG_FILTERS = {"torchao": TORCHAO_KERNEL_FAILED, "torch.utils._pytree": PYTREE_ENUM,
                "bitsandbytes.backends.cpu.ops": BNB_KERNELS_HUB, "bitsandbytes.autograd._functions": BNB_INT8_CAST,
                "DeepSpeed": DEEPSPEED_CPU}


def quiet_library_noise() -> None:
    """Install the filters (idempotent); does nothing when TUNESMITH_DEBUG=1."""
    if os.environ.get("TUNESMITH_DEBUG") == "1":
        return
    warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_WARNING, category=FutureWarning,
                            module=r"transformers\.modeling_utils")
    for name, pattern in _LOG_FILTERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) for f in logger.filters):
            logger.addFilter(_DropMatching(pattern))
