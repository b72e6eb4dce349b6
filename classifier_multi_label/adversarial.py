"""FGM adversarial training on the token embedding table (`--adversarial-epsilon`; Miyato et al.,
2017, "Adversarial Training Methods for Semi-Supervised Text Classification").

The trainer's replica step adds `FGM.gradients` to the clean gradients: the gradients of the loss
with the embedding table moved by r = epsilon * g / ||g||, where g is the table's gradient on the
whole batch (summed over replicas first, so every replica moves the table the way one process
would). The table is swapped inside a `keras.StatelessScope`: no variable is written, so replicas
cannot see one another's perturbation.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .errors import UserError


class FGM:
    """The adversarial pass of one model. `epsilon`: the norm of the move (> 0); `seed_states`: the
    model's dropout seed-generator states, which the pass advances."""

    def __init__(self, model, epsilon: float, seed_states: list):
        if epsilon <= 0:
            raise UserError(f"--adversarial-epsilon {epsilon}: use a positive norm, e.g. 1.0, or 0 to train "
                            "without FGM")
        self.epsilon = float(epsilon)
        self.table = model.backbone.token_embedding.embeddings  # [vocabulary, embedding_dim]
        self.table_index = next(i for i, v in enumerate(model.trainable_variables) if v is self.table)
        self.variables = model.trainable_variables
        self._seed_states = seed_states

    def gradients(self, loss_fn, table_gradient):
        """Gradients (one per trainable variable, None where unused) of `loss_fn()` with the table
        moved along `table_gradient` ([vocabulary, embedding_dim], the whole batch's)."""
        g = table_gradient
        r = tf.stop_gradient(self.epsilon * g / (tf.norm(g) + 1e-12))  # [vocabulary, embedding_dim]
        with tf.GradientTape() as tape:
            moved = self.table.value + r  # read under the tape: the gradient reaches the table
            with keras.StatelessScope(state_mapping=[(self.table, moved)]) as scope:
                loss = loss_fn()
        grads = tape.gradient(loss, self.variables)
        # Dropout drew fresh masks in the scope, which held back their seeds' updates: apply them,
        # or the next step would draw these masks again.
        for state in self._seed_states:
            advanced = scope.get_current_value(state)
            if advanced is not None:
                state.assign(advanced)
        return grads
