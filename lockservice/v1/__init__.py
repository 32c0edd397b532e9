"""Generated from protos/lockservice/v1 by scripts/gen_protos.py: never edit by hand."""
