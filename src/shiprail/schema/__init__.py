"""The files people write: policy (``shiprail.yaml``), services and release plans."""
