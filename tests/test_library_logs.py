"""The torchao import notices are silenced, and nothing else is (sana_wm.library_logs)."""

from __future__ import annotations

import enum
import importlib.util
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sana_wm import library_logs

SRC = Path(__file__).resolve().parents[1] / "src"

# The lines torchao 0.18 (through diffusers 0.42.1 and peft) printed at import under torch 2.13.
NOISE = ("Failed to load", "is an Enum subclass", "Unable to import `torchao` Tensor objects")


def test_plan_prints_no_torchao_notices_and_other_warnings_still_show():
    assert importlib.util.find_spec("torchao") is not None, "the test extra installs torchao (pyproject.toml)"
    script = textwrap.dedent("""
        import enum, logging, warnings
        from sana_wm.cli import main

        assert main(["plan", "--gpu-memory", "24"]) == 0
        import peft  # imports torchao too; already imported by diffusers, so it must print nothing either

        class Colour(enum.Enum):
            RED = 1

        logging.getLogger("torchao").warning("torchao says something else")
        logging.getLogger("torch.utils._pytree").warning("%s is an Enum subclass (not torchao's)", Colour)
        logging.getLogger("diffusers").warning("diffusers says something else")
        warnings.warn("a warning from elsewhere")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "GiB" in run.stdout  # the plan itself was printed
    noise = [line for line in run.stderr.splitlines() if any(n in line for n in NOISE) and "not torchao" not in line]
    assert noise == []
    for other in ("torchao says something else", "Colour", "diffusers says something else",
                  "a warning from elsewhere"):
        assert other in run.stderr


def _record(name: str, msg: str, *args, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class _Torchao(enum.Enum):
    A = 1


_Torchao.__module__ = "torchao.quantization.quantize_"


@pytest.mark.parametrize(("name", "msg", "args", "silenced"), [
    ("torchao", "Failed to load /x/torchao/_C_mxfp8.so: Could not load this library", (), True),
    ("torchao", "Skipping import of cpp extensions due to incompatible torch version.", (), True),
    ("torchao", "Failed to quantize layer x", (), False),
    ("torch.utils._pytree", "%s is an Enum subclass and is now natively supported", (_Torchao,), True),
    ("torch.utils._pytree", "%s is an Enum subclass and is now natively supported", (logging.Formatter,), False),
    ("diffusers.quantizers.torchao.torchao_quantizer", "Unable to import `torchao` Tensor objects. This may", (),
     True),
    ("diffusers.quantizers.torchao.torchao_quantizer", "torchao is too old", (), False),
])
def test_each_filter_matches_only_its_message(name, msg, args, silenced):
    record = _record(name, msg, *args)
    logger = logging.getLogger(name)
    library_logs.install()
    library_logs.install()
    filters = [f for f in logger.filters if isinstance(f, library_logs._Silence)]
    assert len(filters) == 1  # installing twice adds nothing
    previous = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert logger.filter(record) is (not silenced)
        assert record.levelno == (logging.DEBUG if silenced else logging.WARNING)
        logger.setLevel(logging.DEBUG)  # a user who asks for DEBUG still sees it, as DEBUG
        assert logger.filter(_record(name, msg, *args))
    finally:
        logger.setLevel(previous)
