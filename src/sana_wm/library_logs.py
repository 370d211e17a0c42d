"""Log lines other libraries print when they import torchao, silenced for every sana-wm entry point.

diffusers and peft import torchao themselves whenever it is installed (the ``quant`` and ``test`` extras), so
any command that touches them (``sana-wm plan`` included) printed, before a single line of its own:

* torchao's ``Failed to load .../torchao/_C*.so`` (logger ``torchao``): its wheel ships native kernels built
  for another torch (or Python) build; torchao runs without them, and the kernels sana-wm uses on a GPU are
  checked where they are chosen (:mod:`sana_wm.quant.quantize`);
* torch's ``<enum ...> is an Enum subclass and is now natively supported ...`` (logger ``torch.utils._pytree``)
  once per torchao config enum: a deprecation aimed at torchao's own code;
* diffusers' ``Unable to import `torchao` Tensor objects`` (its torchao quantizer's logger): diffusers looks for
  tensor classes that torchao 0.18 removed, to load checkpoints serialized by diffusers' torchao quantizer,
  which sana-wm never reads (it quantizes after loading, through torchao's API).

None is the user's to fix or ours. These are ``logging`` records, not ``warnings`` (a warnings filter does not
catch them), and they are emitted while diffusers or peft import torchao, wherever in sana-wm that first
happens; so :func:`install` puts one filter on each of the three loggers when ``sana_wm`` is imported (a logger
can hold a filter before the library that owns it is imported). Each filter matches only its own message; every
other record of those loggers passes, and the matched ones still show as DEBUG records to a user who turns on
DEBUG logging for that logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable


def _torchao_native_library(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return (message.startswith("Failed to load ") and "torchao" in message) or message.startswith(
        "Skipping import of cpp extensions")


def _torchao_enum_pytree_notice(record: logging.LogRecord) -> bool:
    args = record.args if isinstance(record.args, tuple) else ()
    return ("is an Enum subclass" in str(record.msg) and len(args) > 0
            and getattr(args[0], "__module__", "").partition(".")[0] == "torchao")


def _diffusers_torchao_tensors(record: logging.LogRecord) -> bool:
    return record.getMessage().startswith("Unable to import `torchao` Tensor objects")


# logger name -> the one message of that logger that is silenced
SILENCED: dict[str, Callable[[logging.LogRecord], bool]] = {
    "torchao": _torchao_native_library,
    "torch.utils._pytree": _torchao_enum_pytree_notice,
    "diffusers.quantizers.torchao.torchao_quantizer": _diffusers_torchao_tensors,
}


class _Silence(logging.Filter):
    """Turns the records ``matches`` picks into DEBUG records, dropped unless their logger logs DEBUG."""

    def __init__(self, matches: Callable[[logging.LogRecord], bool]):
        super().__init__()
        self.matches = matches

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not self.matches(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def install() -> None:
    """Puts the filters on their loggers; calling it again adds nothing."""
    for name, matches in SILENCED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Silence) for f in logger.filters):
            logger.addFilter(_Silence(matches))
