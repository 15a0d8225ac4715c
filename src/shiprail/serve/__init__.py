"""``shiprail serve``: the HTTP API (SDK configs, pushed outcomes, signals) with the controller inside."""

from shiprail.serve.app import SdkService, create_app

__all__ = ["SdkService", "create_app"]
