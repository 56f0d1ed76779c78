"""Pruning vs quantization at equal size (Kuzmin et al., "Pruning vs Quantization: Which is Better?").

snr.py         analytic SNR of both methods for normal, Laplace, uniform and truncated Student-t weights
empirical.py   per-tensor SNR and kurtosis of real models (model_io.py reads them), pruning-win regions
layer_bounds.py per-layer output-SNR ranges: heuristics vs exact MIP (miqp.py) or relaxation bounds
finetune.py    prune vs quantize a torch model to equal size, fine-tune both equally, compare accuracy
cli.py         `pqhw analyze distributions | model | layers | finetune`, writing JSON and PNG plots

The default integer grid is "full" (2^b codes, -2^(b-1)..2^(b-1)-1); "symmetric" (2^b - 1 codes) is offered
everywhere with --grid. On the standard normal, INT4 gives 19.26 dB (full) or 18.90 dB (symmetric) against
5.58 dB for 75 % pruning; the paper quotes 19.1 and 5.6.
"""
