"""Training side of pqhw: Brevitas quantizers and layers, the papers' methods, data, cost models."""
