"""Layer 6, commands: one module per entry point of code/ (argument parsing, printing) and
the flags they share (``cli``)."""
