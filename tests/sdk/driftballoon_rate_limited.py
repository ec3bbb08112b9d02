"""The real `driftballoon` SDK against a server with a tight per-key rate limit.

Queues LOGS logs with `.submit()` on a background-started client (the way apps use it) and
waits until the SDK's queue is empty: the server answers part of the flushes with 429, which
the SDK re-queues without counting a retry, so every log must still arrive. The test that runs
this checks the server's side: every log stored, and 429s answered.

Environment: DRIFTBALLOON_API_KEY, DRIFTBALLOON_BASE_URL, LOGS.
"""

import os
import time

from driftballoon import DriftBalloon

KEY = os.environ["DRIFTBALLOON_API_KEY"]
BASE = os.environ["DRIFTBALLOON_BASE_URL"]
LOGS = int(os.environ["LOGS"])


def main():
    client = DriftBalloon(api_key=KEY, base_url=BASE, sync_interval=0.5)
    try:
        for i in range(LOGS):
            client.log(name="rate-limited", response=f"Rate limited answer number {i}.", prompt=f"q{i}", model="gpt-4o").submit()
        # A flush takes its batch off the queue and re-queues it on a 429, so an empty queue
        # counts only once it has stayed empty for a few flush cycles.
        deadline = time.time() + 90
        empty_since = None
        while time.time() < deadline:
            if client._log_queue:
                empty_since = None
            elif empty_since is None:
                empty_since = time.time()
            elif time.time() - empty_since > 2.0:
                break
            time.sleep(0.1)
        assert client._log_queue == [], f"{len(client._log_queue)} logs still queued after 90 s"
    finally:
        client.stop()
    print(f"driftballoon SDK: {LOGS} rate-limited logs flushed")


if __name__ == "__main__":
    main()
