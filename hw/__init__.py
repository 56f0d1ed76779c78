"""Hardware side of pqhw: QONNX -> FINN front-end -> integer graph -> RTL -> bitstream -> report."""
