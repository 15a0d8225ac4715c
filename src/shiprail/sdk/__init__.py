"""shiprail's Python SDK: ask "stable or canary?" locally, with the weight kept current by ``shiprail serve``.

    from shiprail.sdk import Client

    with Client("http://shiprail:8700", "checkout", os.environ["SHIPRAIL_SDK_KEY"]) as flags:
        flags.wait_ready(timeout=5)  # the first config; until then every key gets "stable"
        variant = flags.variant(user_id)
        if variant == "canary":
            ...
        flags.record(variant, ok=True, latency_s=0.042)

The package imports only the stdlib, httpx and shiprail's stdlib-only ``defaults`` and ``errors``
(never pydantic, SQLAlchemy or FastAPI), so embedding it costs an app almost nothing. The OpenFeature
provider lives in ``shiprail.sdk.openfeature`` and is imported only when asked for.
"""

from shiprail.sdk.client import Client, Decision, ShiprailSdkError
from shiprail.sdk.hashing import Evaluator, Variant, bucket

__all__ = ["Client", "Decision", "Evaluator", "ShiprailSdkError", "Variant", "bucket"]
