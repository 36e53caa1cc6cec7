"""The restorers: the CLR-Face model (VQGAN, score prior, sampler, identity guidance, gate) and the baseline."""
