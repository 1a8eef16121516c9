"""Analyses built on codes: concept recovery against the toy language's concepts, exact head and source
attribution of attention-output SAE features, per-feature contexts and effects, passive-variable statistics of VAE
encoders, and spliced evaluation of an SAE inside its language model."""
