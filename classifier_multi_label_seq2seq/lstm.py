"""The seq2seq head's encoder LSTMs, fused (docs/algorithms.md §1.8): both directions and every layer
of the stack stepped in one `tf.while_loop` wavefront, with Keras LSTM layers' weights and results.

Example:
    >>> import keras
    >>> fw, bw = [keras.layers.LSTM(4, return_sequences=True)], [keras.layers.LSTM(4, return_sequences=True)]
    >>> for layer in fw + bw:
    ...     layer.build((None, None, 8))
    >>> x, mask = tf.random.normal([2, 5, 8]), tf.constant([[True] * 3 + [False] * 2, [True] * 5])
    >>> out_fw, out_bw, (h, c), _ = bidirectional_lstm_stack(x, mask, fw, bw)
    >>> tuple(out_fw.shape), tuple(h.shape)
    ((2, 5, 4), (2, 4))
"""

from __future__ import annotations

import keras
import tensorflow as tf


def lstm_gates(z, c, axis=-1):
    """Keras LSTMCell's update from its pre-activations z (4 units along `axis`, gate order i, f, g,
    o) and the cell state c float32 (units along `axis`) -> (h in z's dtype, c float32).

    The gates run in float32 whatever z's dtype: on this CPU a bfloat16 sigmoid took 2.7x as long as
    a float32 one, and the cell state, summed over the whole text, keeps float32's precision."""
    i, f, g, o = tf.split(tf.cast(z, tf.float32), 4, axis=axis)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.cast(tf.sigmoid(o) * tf.tanh(c), z.dtype), c


def bidirectional_lstm_stack(x, mask, forward, backward, dropout=None, training=None):
    """The encoder's stacked LSTMs, both directions stepped together, with Keras LSTM layers' weights.

    x [batch, length, in]; mask [batch, length] bool, True on each text then False on its padding
    (padding at the end, as the packer makes it); forward, backward: built `keras.layers.LSTM`
    layers, one per depth; dropout (a Keras Dropout layer) on every layer's output when training.
    -> outputs fw, bw [batch, length, units] in text order (undefined on padding, which attention
    masks), and the last layer's final (h, c) of each direction [batch, units].

    Same results on the text as running the layers one by one with Keras' masking
    (`test_fused_lstm_stack_equals_keras_lstm_layers`). The backward direction reads each text
    reversed in place (a gather), so in both directions the padding comes after the text: no step
    needs a mask, and the final states are gathered at each text's last step. All layers run in one
    wavefront loop (`lstm_wavefront`).
    """
    cells = [(f.cell, b.cell) for f, b in zip(forward, backward)]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # [batch]

    position = tf.range(tf.shape(x)[1])[None, :]  # [1, length]; the backward reading order of each text:
    reading_order = tf.where(position < lengths[:, None], lengths[:, None] - 1 - position, position)  # [batch, length]

    def reverse(t):  # [batch, length, ...]: each text reversed, its padding left at the end
        # A gather, not tf.reverse_sequence: 0.8 against 2.2 ms at [64, 60, 384] bfloat16.
        return tf.gather(t, reading_order, batch_dims=1)

    inputs = tf.stack([x, reverse(x)])  # [2, batch, length, in]: each direction in its reading order
    outputs, (h, c) = lstm_wavefront(inputs, lengths, cells, dropout, training)
    return outputs[0], reverse(outputs[1]), (h[0], c[0]), (h[1], c[1])


def lstm_wavefront(inputs, lengths, cells, dropout=None, training=None):
    """Stacked LSTM layers over both directions in one loop, one batched matmul per step.

    inputs [2, batch, length, in], each direction in its reading order, padding after the text;
    lengths [batch]; cells: per layer, the (forward, backward) Keras LSTM cells. -> outputs [2,
    batch, length, units] of the top layer (dropout applied when training; past a text's end they
    run on over padding and mean nothing) and its final (h, c) [2, batch, units] at each text's last
    step (zeros for an empty text, as Keras).

    At loop step k layer l reads time k - l, whose input (layer l - 1's output at that time) was made
    at step k - 1, so `length + layers - 1` steps run every layer; the first `layers - 1` steps, in
    which the upper layers have not started, run before the loop and keep those layers at zero. No
    step masks anything: the padding comes after every text (`tf.where` on the states was a tenth of
    the loop's time).

    Inside the loop the states are feature-major, [units, batch], and a step is one batched matmul
    with the weights first: every layer's input and recurrent terms and its bias together,
    [2 layers, 4 units, rows] x [2 layers, rows, batch]: width + units rows of inputs and states
    (width = max(in, units), the narrower zero-padded), then a row of ones for the bias and zero
    rows up to a multiple of 32 (oneDNN's bfloat16 matmul took 1.14 ms with 769 rows, 1.02 with
    800). oneDNN repacks a bfloat16 matmul's second operand on every call; with the small state there
    instead of the weights the upper layers' matmul took 0.59 ms instead of 0.77 per step. One matmul
    for all layers also beat projecting the first layer's input for every time before the loop (one
    large matmul, then a second matmul and an add per step): docs/benchmark-history.md.
    """
    dtype, depth = inputs.dtype, len(cells)
    units = cells[0][0].units
    width = max(int(inputs.shape[-1]), units)  # the input rows of every layer's joint matmul

    def both(layer_cells, attr):  # [2, ...]: the forward direction's weight, then the backward one's
        return tf.stack([tf.cast(getattr(c, attr), dtype) for c in layer_cells])

    rows = -(-(width + units + 1) // 32) * 32  # inputs, states, the bias' row of ones, zero rows
    spare = rows - width - units - 1  # the zero rows after the bias' row

    def layer_weights(layer_cells):  # [2, 4 units, rows]: [input kernel | recurrent kernel | bias | 0]^T
        kernel = both(layer_cells, "kernel")  # [2, in, 4 units]
        if width > kernel.shape[1]:
            kernel = tf.pad(kernel, [[0, 0], [0, width - kernel.shape[1]], [0, 0]])
        bias = tf.pad(both(layer_cells, "bias")[:, None], [[0, 0], [0, spare], [0, 0]])
        return tf.transpose(tf.concat([kernel, both(layer_cells, "recurrent_kernel"), bias], axis=1), [0, 2, 1])

    weights = tf.concat([layer_weights(lc) for lc in cells], axis=0)  # [2 depth, 4 units, rows]
    x_t = tf.transpose(inputs, [2, 0, 3, 1])  # [length, 2, in, batch]
    if width > x_t.shape[2]:
        x_t = tf.pad(x_t, [[0, 0], [0, 0], [0, width - x_t.shape[2]], [0, 0]])  # [length, 2, width, batch]
    length, batch = tf.shape(x_t)[0], tf.shape(x_t)[3]
    total = length + depth - 1  # the last depth - 1 steps only finish the upper layers
    if training:
        # Read per step through a TensorArray: the gradient of a plain slice `x_t[k]` inside the
        # loop would add a whole [length, ...] tensor per step. Padded to `total` steps.
        steps = tf.TensorArray(dtype, size=total).unstack(tf.pad(x_t, [[0, depth - 1], [0, 0], [0, 0], [0, 0]]))
        read = steps.read
    else:
        # A slice per step: unstacking into a TensorArray copied the whole tensor (12 ms of 200 at
        # batch 64, length 60). Steps past the text only move the upper layers; layer 0's are unused.
        def read(k):
            return x_t[tf.minimum(k, length - 1)]
    ones = tf.pad(tf.ones(tf.stack([depth, 2, 1, batch]), dtype), [[0, 0], [0, 0], [0, spare], [0, 0]])
    below_pad = [[0, 0], [0, 0], [0, width - units], [0, 0]]  # layers 1..: their input h, zero-padded to width
    noise = None
    if dropout is not None and training and dropout.rate > 0 and depth > 1:
        # Dropout on the outputs of the layers below the top, drawn for every step before the loop.
        draw = keras.random.uniform(tf.stack([total, depth - 1, 2, units, batch]), seed=dropout.seed_generator)
        noise = tf.TensorArray(dtype, size=total).unstack(tf.cast(draw >= dropout.rate, dtype) / (1.0 - dropout.rate))
    shape = tf.stack([depth, 2, units, batch])  # h and c of every layer, feature-major

    def step(k, h, c, outputs, cells_top, started=depth):
        """Step k -> the next loop state. Layers >= `started` have not started (only in the first
        depth - 1 steps) and keep their zero state."""
        below = read(k)[None]  # the first layer's input [1, 2, width, batch], then the others': [depth, ...]
        if depth > 1:
            h_below = h[:-1] if noise is None else h[:-1] * noise.read(k)  # [depth - 1, 2, units, batch]
            below = tf.concat([below, tf.pad(h_below, below_pad) if width > units else h_below], axis=0)
        joint = tf.reshape(tf.concat([below, h, ones], axis=2), [2 * depth, rows, batch])
        z = tf.reshape(tf.matmul(weights, joint), [depth, 2, 4 * units, batch])
        h_new, c_new = lstm_gates(z, c, axis=2)
        if started < depth:
            h_new, c_new = tf.concat([h_new[:started], h[started:]], 0), tf.concat([c_new[:started], c[started:]], 0)
        return k + 1, h_new, c_new, outputs.write(k, h_new[-1]), cells_top.write(k, c_new[-1])

    state = (tf.constant(0), tf.zeros(shape, dtype), tf.zeros(shape, tf.float32),
             tf.TensorArray(dtype, size=total, element_shape=[2, units, None]),  # the top layer's h per step
             tf.TensorArray(tf.float32, size=total, element_shape=[2, units, None]))  # and its c
    for k in range(depth - 1):  # at step k, layers 0..k have started
        state = step(*state, started=k + 1)
    _, _, _, outputs, cells_top = tf.while_loop(lambda k, *_: k < total, step, state)
    # [length, 2, units, batch] per step -> [2, batch, length, units]
    outputs, cells_top = (tf.transpose(ta.stack()[depth - 1:], [1, 3, 0, 2]) for ta in (outputs, cells_top))
    # The final states: each text's last step, [2, batch, units] (zeros for an empty text, as Keras).
    last = tf.broadcast_to(tf.maximum(lengths - 1, 0)[None], [2, batch])
    h, c = (tf.where((lengths > 0)[None, :, None], tf.gather(t, last, axis=2, batch_dims=2), 0.0)
            for t in (outputs, cells_top))
    if dropout is not None:
        outputs = dropout(outputs, training=training)
    return outputs, (h, c)
