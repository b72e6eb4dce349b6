"""Research methods on the shared core: `label_mask` (LM-MTC) and `prototype_contrastive`
(SharpReCL, multi-label adaptation). Each is a head plus the four entry points."""
