"""Generated from protos/lockservice/v1 by clients/python/scripts/gen_client_protos.py: never edit by hand."""
