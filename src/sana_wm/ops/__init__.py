"""Tensor operators without parameters: the math that model layers are built from."""

from sana_wm.ops.gdn import DEFAULT_EPS, GDNState, gdn_scan, released_chunk_lengths

__all__ = ["DEFAULT_EPS", "GDNState", "gdn_scan", "released_chunk_lengths"]
