"""The one check of the scorer's optional packages and weights files."""

from __future__ import annotations

import sys

import pytest

from sana_wm.bench import BenchError
from sana_wm.bench.optional import missing_package, require_package, weights_file


def test_weights_file_names_the_flag_and_the_file_it_wants(tmp_path):
    with pytest.raises(BenchError, match=r"^--x-weights .*absent.pth: no such file \(the X checkpoint\)$"):
        weights_file("--x-weights", tmp_path / "absent.pth", "the X checkpoint")
    (tmp_path / "w.pth").write_bytes(b"x")
    assert weights_file("--x-weights", str(tmp_path / "w.pth"), "the X checkpoint") == tmp_path / "w.pth"
    with pytest.raises(BenchError, match="no such file"):  # a folder is not a weights file
        weights_file("--x-weights", tmp_path, "the X checkpoint")


def test_packages_are_imported_or_refused_with_the_given_words(monkeypatch):
    assert require_package("json", "unused") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "json", None)  # import json -> ImportError
    with pytest.raises(BenchError, match=r"^--flag needs json: pip install it$"):
        require_package("json", "--flag needs json: pip install it")
    assert missing_package("os", "unused") is None
    assert missing_package("no_such_package_here", "install it") == "install it"
