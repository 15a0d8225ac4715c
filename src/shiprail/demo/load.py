"""The demo's load generator: simulated users hitting the sample service at a steady rate."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx


class Load:
    """``threads`` workers, each with a kept-alive connection, together sending about ``rate`` requests/s.

    Every request names one of ``users`` stable user ids, so the SDK puts each user in a sticky cohort.
    ``served`` counts answers per (version, status).
    """

    def __init__(self, url: str, *, rate: float, users: int, threads: int = 8) -> None:
        self.url = url.rstrip("/")
        self.period = threads / rate
        self.users = users
        self.threads = threads
        self.served: Counter[tuple[str, int]] = Counter()
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> Load:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), name=f"demo-load-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=5)

    def snapshot(self) -> Counter[tuple[str, int]]:
        with self._lock:
            return Counter(self.served)

    def _run(self, n: int) -> None:
        pick = random.Random(n)
        # Monotonic pacing (not a decision about time, only a steady request rate).
        next_at = time.monotonic() + pick.uniform(0, self.period)
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                next_at = max(next_at + self.period, time.monotonic() - self.period)
                user = f"user-{pick.randrange(self.users)}"
                try:
                    resp = http.get("/checkout", params={"user": user})
                    version = str(resp.json().get("version"))
                except (httpx.HTTPError, ValueError):
                    with self._lock:
                        self.failures += 1
                    continue
                with self._lock:
                    self.served[(version, resp.status_code)] += 1
