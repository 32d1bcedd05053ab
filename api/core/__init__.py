"""The protocol-neutral core: pipeline, stream service, upstream, catalog, translation helpers."""
