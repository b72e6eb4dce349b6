"""Research methods on the shared core: `prototype_contrastive` (SharpReCL, multi-label adaptation)
works; `label_mask` (LM-MTC) is not implemented yet (issue 5)."""
