//! One-pass label-map statistics over the streaming NIfTI reader: per-label counts,
//! volumes, bounding boxes, centroids, border contact, components, intensities under
//! each label, two-map confusion (Dice/IoU) and geometry comparison.
