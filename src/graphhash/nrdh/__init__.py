"""NRDH's two networks and their training: the graph autoencoder (stage 1) and the hash network (stage 2)."""
