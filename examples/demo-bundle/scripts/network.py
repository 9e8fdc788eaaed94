# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""The DEMO bundle's network: a fixed intensity-band voxel classifier.

ctmr-skill DEMO bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR,
not for clinical use. It exists so that ctmr-skill can run a real MONAI bundle
end to end (config parsing, checkpoint loading, transforms and their inversion,
SaveImaged) on CPU in seconds, without NVIDIA's weights.

Each known class id owns one intensity band [lower, upper) in the units of the
preprocessed image (Hounsfield units for CT; the bundle does not rescale). The
bands are the network's weights and come from models/model.pt through the
bundle's CheckpointLoader, exactly as a trained network's weights would.

Forward pass, per class: a band score `min(x - lower, upper - x)` (positive
inside the band), then a grey-scale opening (3x3x3 erosion, then dilation) that removes the one-voxel shells that
interpolation leaves where two intensities meet. The output has one channel per
requested class id, like VISTA3D's class-prompted head: channel n is a logit
map for `class_vector[n]`; ids the demo does not know get a constant negative
logit (never segmented).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["IntensityBandNet"]


def _box3(volume: torch.Tensor, combine) -> torch.Tensor:
    """Combine each voxel's 3x3x3 neighbourhood with `combine` (torch.minimum / maximum),
    separably along the three spatial axes, edges replicated. Far faster on CPU than
    max_pool3d, which matters for a demo that must run in seconds."""
    for axis in (2, 3, 4):
        n = volume.shape[axis]
        padded = torch.cat(
            [volume.narrow(axis, 0, 1), volume, volume.narrow(axis, n - 1, 1)], dim=axis
        )
        volume = combine(combine(padded.narrow(axis, 0, n), padded.narrow(axis, 1, n)), padded.narrow(axis, 2, n))
    return volume


class IntensityBandNet(nn.Module):
    """Intensity-band classifier with VISTA3D-like `class_vector` prompting.

    Args:
        class_ids: the label ids the demo can segment, one band per id.
        background_logit: the logit returned for unknown ids and outside all bands.
    """

    def __init__(self, class_ids: Sequence[int], background_logit: float = -1.0) -> None:
        super().__init__()
        ids = [int(i) for i in class_ids]
        if not ids or len(set(ids)) != len(ids) or min(ids) < 1:
            raise ValueError(f"class_ids must be distinct positive label ids, got {list(class_ids)}")
        # Stored in the checkpoint so that a model.pt made for other ids fails to load
        # instead of silently labelling voxels with the wrong ids.
        self.register_buffer("class_ids", torch.tensor(ids, dtype=torch.long))
        # (lower, upper) per class; the real values come from models/model.pt.
        self.bands = nn.Parameter(torch.zeros(len(ids), 2), requires_grad=False)
        self.background_logit = float(background_logit)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "class_ids")
        if saved is not None and not torch.equal(saved.to(torch.long).cpu(), self.class_ids.cpu()):
            raise ValueError(
                f"checkpoint class_ids {saved.tolist()} do not match the network's {self.class_ids.tolist()}; "
                "regenerate models/model.pt with scripts/make-demo-weights.py"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def band_scores(self, image: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        """[B, 1, X, Y, Z] image -> [B, K, X, Y, Z] opened band scores for the given class channels
        (indices into `class_ids`; all known classes if None)."""
        if image.ndim != 5 or image.shape[1] != 1:
            raise ValueError(f"expected a [B, 1, X, Y, Z] image, got shape {tuple(image.shape)}")
        bands = self.bands if channels is None else self.bands[list(channels)]
        intensity = image.float()
        lower = bands[:, 0].view(1, -1, 1, 1, 1)
        upper = bands[:, 1].view(1, -1, 1, 1, 1)
        scores = torch.minimum(intensity - lower, upper - intensity)
        return _box3(_box3(scores, torch.minimum), torch.maximum)  # grey opening: erode, then dilate

    def forward(self, image: torch.Tensor, class_vector: torch.Tensor | None = None, **_unused) -> torch.Tensor:
        """Return [B, N, X, Y, Z] logits for the N ids in `class_vector` (all known ids if None)."""
        if class_vector is None:
            return self.band_scores(image)
        requested = [int(v) for v in torch.as_tensor(class_vector).reshape(-1).tolist()]
        known = {int(c): k for k, c in enumerate(self.class_ids.tolist())}
        out = torch.full(
            (image.shape[0], len(requested), *image.shape[2:]),
            self.background_logit,
            dtype=torch.float32,
            device=image.device,
        )
        slots = [n for n, label_id in enumerate(requested) if label_id in known]
        if slots:
            scores = self.band_scores(image, [known[requested[n]] for n in slots])
            out[:, slots] = scores
        return out
