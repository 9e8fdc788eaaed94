# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
# Written for ctmr-skill; not derived from NV-Segment-CTMR code.
"""Python components of the ctmr-skill DEMO bundle.

ctmr-skill DEMO bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR,
not for clinical use. Imported by configs/inference.json as `scripts`, the same
way the upstream bundle imports its own `scripts` package.
"""

DEMO_BANNER = (
    "ctmr-skill DEMO bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR, "
    "not for clinical use"
)
