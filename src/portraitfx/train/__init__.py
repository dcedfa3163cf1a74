"""Training: the networks, losses and loops that make the models effects load (needs the ``train`` extra)."""
