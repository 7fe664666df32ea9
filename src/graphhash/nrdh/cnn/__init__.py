"""Stage 2 of NRDH as the paper trains it: a CNN on the images, fitted to the node representations.

The paper fine-tunes ResNet-18 with its fc layers reset ("retrain the whole network"). Here the network is
the run's backbone (``Backbone.stages``) followed by Table 2's head (``HashNet``):

    h_i = w_i f(image_i) + c_i,    fc(image_i) = head(h_i)                     (B, 3, S, S) -> (B, g)

f is the backbone: its last ``hash.cnn.trainable`` stages are trained, the others keep their pretrained
weights (in inference mode). With ``hash.input: features`` (the paper) w_i = 1 and c_i = 0; with
``hash.input: graph``, w_i and c_i come from item i's kNN graph over the frozen features (Eq. 4: w_i = p
when a neighbour is linked, c_i the weighted sum of the linked neighbours' features), the MLP's graph input
with x_i replaced by the trained embedding. The loss is the MLP's L2 (``HashLearner.loss``), on the same targets.

    model.py      HashCNN: the backbone's stages and the head; its codes
    images.py     the training images, augmented (crop, flip, colour jitter) from seeded generators
    training.py   CnnLearner (the hyperparameters of ``hash.cnn``): the training loop, the frozen stages' outputs
                  computed once, the codes of every image

Training is reproducible on CPU: batch order comes from a seeded generator, augmentations from a generator
seeded by (seed, epoch, item), so neither depends on the number of DataLoader workers, and a run resumed
from its checkpoint (saved atomically after every epoch, ``graphhash.files.resume``) ends with the same bytes as
an uninterrupted one. When ``augment`` is empty the frozen stages see every image once: their outputs are computed
once and reused by every epoch, by encoding and by every code length.
"""
