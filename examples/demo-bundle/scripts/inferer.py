# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Sliding-window inference for the ctmr-skill DEMO bundle (NOT NV-Segment-CTMR).

Honours the same `patch_size` override as the upstream bundle (`roi_size` here),
so a caller's `--patch_size "[64,64,64]"` changes the windowing as it would there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import Inferer, SlidingWindowInferer

__all__ = ["DemoInferer"]


class DemoInferer(Inferer):
    """Runs the network over `roi_size` windows and passes the class prompt through."""

    def __init__(self, roi_size: Sequence[int], overlap: float = 0.25, sw_batch_size: int = 1) -> None:
        super().__init__()
        roi = [int(v) for v in roi_size]
        if len(roi) != 3 or min(roi) < 8:
            raise ValueError(f"patch_size must be three integers >= 8, got {list(roi_size)}")
        self.window = SlidingWindowInferer(
            roi_size=roi, sw_batch_size=int(sw_batch_size), overlap=float(overlap), mode="constant",
            padding_mode="replicate",
        )

    def __call__(self, inputs: torch.Tensor, network, class_vector: torch.Tensor) -> torch.Tensor:
        return self.window(inputs, network, class_vector=class_vector)
