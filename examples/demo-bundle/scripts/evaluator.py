# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Prompted inference loop for the ctmr-skill DEMO bundle (NOT NV-Segment-CTMR).

Accepts the same per-image keys as the upstream bundle's `input_dict`: `image`
and an optional `label_prompt` (a list of label ids). Without a prompt it
segments the modality's everything-set (`hyper_kwargs["everything_labels"]`),
as upstream does. Point prompts are refused with a clear error: the demo has no
interactive head.

Only the requested ids the demo network knows are computed (the others could
never be positive anyway), so an everything-set of ~117 ids costs no more than
the demo's handful of classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.transforms import Transform, reset_ops_id
from monai.utils.enums import CommonKeys as Keys

from . import DEMO_BANNER

__all__ = ["DemoEvaluator", "prompt_ids"]

LOGGER = logging.getLogger("ctmr_skill_demo")

# Highest label id of the NV-Segment-CTMR vocabulary (configs/metadata.json).
MAX_LABEL_ID = 345
# Ids the upstream bundle refuses as label prompts without points (deprecated or
# unsupported classes); refused here too so the demo fails where upstream would.
UNSUPPORTED_PROMPT_IDS = frozenset({16, 129, 130, 131, 133, 137, 138, 139, 140, 141, 142, 143, 144, 145, 162})


def prompt_ids(label_prompt: Any) -> list[int] | None:
    """Normalise a collated `label_prompt` (list of ints, of 1-element tensors, or a tensor) to ints."""
    if label_prompt is None:
        return None
    if isinstance(label_prompt, torch.Tensor):
        return [int(v) for v in label_prompt.reshape(-1).tolist()]
    if not isinstance(label_prompt, (list, tuple)):
        raise ValueError(f"label_prompt must be a list of label ids such as [1, 3], got {label_prompt!r}")
    ids = []
    for item in label_prompt:
        value = torch.as_tensor(item)
        if value.numel() != 1:
            raise ValueError(f"label_prompt must be a flat list of single label ids, got element {item!r}")
        if value.is_floating_point() and float(value) != int(value):
            raise ValueError(f"label_prompt ids must be integers, got {float(value)}")
        ids.append(int(value))
    return ids


def validate_prompt(ids: Sequence[int]) -> None:
    if len(ids) == 0:
        raise ValueError("label_prompt is empty; give at least one label id, or omit it to segment everything")
    for label_id in ids:
        if not 1 <= label_id <= MAX_LABEL_ID:
            raise ValueError(f"label_prompt id {label_id} is outside the label vocabulary 1..{MAX_LABEL_ID}")
        if label_id in UNSUPPORTED_PROMPT_IDS:
            raise ValueError(f"label_prompt id {label_id} is not a supported class prompt (deprecated/unsupported)")


class DemoEvaluator(SupervisedEvaluator):
    """SupervisedEvaluator whose iteration reads the image's prompt and runs the prompted inferer."""

    def __init__(
        self,
        device: torch.device,
        val_data_loader: Iterable,
        network: torch.nn.Module,
        inferer: Inferer,
        postprocessing: Transform | None = None,
        val_handlers: Sequence | None = None,
        hyper_kwargs: dict | None = None,
        amp: bool = False,
        decollate: bool = True,
        iteration_update: Callable | None = None,
    ) -> None:
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=network,
            inferer=inferer,
            postprocessing=postprocessing,
            val_handlers=val_handlers,
            amp=amp,
            decollate=decollate,
            iteration_update=iteration_update,
        )
        self.hyper_kwargs = dict(hyper_kwargs or {})
        if not self.hyper_kwargs.get("user_prompt", True):
            raise ValueError("the demo bundle only supports prompted inference (hyper_kwargs.user_prompt = true)")
        LOGGER.warning(DEMO_BANNER)

    def _iteration(self, engine: SupervisedEvaluator, batchdata: dict[str, Any]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        for key in ("points", "point_labels"):
            if batchdata.get(key) is not None:
                raise ValueError(
                    f"'{key}' given, but the ctmr-skill demo bundle supports only label_prompt; "
                    "point prompts need the real NV-Segment-CTMR bundle"
                )
        requested = prompt_ids(batchdata.get("label_prompt"))
        if requested is None:
            everything = self.hyper_kwargs.get("everything_labels")
            if everything is None:
                raise ValueError("no label_prompt given and no everything_labels configured")
            requested = [int(v) for v in everything]
        validate_prompt(requested)
        requested = list(dict.fromkeys(requested))  # de-duplicate, keep order

        known = set(int(v) for v in engine.network.class_ids.tolist())
        computed = [i for i in requested if i in known] or requested[:1]
        LOGGER.info(
            "demo: %d label id(s) requested, computing %s (the demo knows %s)", len(requested), computed, sorted(known)
        )

        inputs = batchdata[Keys.IMAGE].to(engine.state.device)
        class_vector = torch.as_tensor(computed, device=inputs.device).unsqueeze(-1)
        with engine.mode(engine.network), torch.no_grad():
            pred = engine.inferer(inputs, engine.network, class_vector=class_vector)
        # The postprocessing inverts the preprocessing with a deep copy of it, whose
        # transform ids differ; reset the ids recorded on the image so Invertd accepts it.
        inputs = reset_ops_id(inputs)
        engine.state.output = {
            Keys.IMAGE: inputs,
            Keys.LABEL: None,
            Keys.PRED: pred,
            # [1, N, 1]: decollated to the [N, 1] prompt VistaPostTransformd maps channels with.
            "label_prompt": class_vector.unsqueeze(0),
        }
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
