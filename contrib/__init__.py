"""LM-MTC label-mask training and SharpReCL prototype contrastive training: not implemented yet (tracked in issue 5).

Nothing in this package trains or predicts yet; the shared core and the baseline live in
`classifier_multi_label`.
"""
