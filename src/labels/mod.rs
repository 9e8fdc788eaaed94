//! The upstream label vocabulary: id → name, deprecation, datasets, the
//! everything-sets per modality, prompt sub-class expansion, name resolution for
//! agents, and the viewer sidecars written next to a mask.
