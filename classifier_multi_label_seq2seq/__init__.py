"""ALBERT + seq2seq attention decoder with beam search: not implemented yet (tracked in issue 4).

Nothing in this package trains or predicts yet; the shared core and the baseline live in
`classifier_multi_label`.
"""
