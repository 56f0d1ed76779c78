"""The `pqhw` command and the flows that orchestrate quant, hw and sim from the top."""
