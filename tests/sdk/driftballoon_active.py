"""Reads one prompt's config through the real `driftballoon` SDK and checks it.

Environment: DRIFTBALLOON_API_KEY, DRIFTBALLOON_BASE_URL, PROMPT, EXPECT_ACTIVE ("a"/"b"),
EXPECT_STATUS, EXPECT_BASELINE ("learning"/"ready").
"""

import os
import sys
import time

from driftballoon import DriftBalloon


def main():
    name = os.environ["PROMPT"]
    client = DriftBalloon(api_key=os.environ["DRIFTBALLOON_API_KEY"], base_url=os.environ["DRIFTBALLOON_BASE_URL"],
                          sync_interval=0.2)
    try:
        deadline = time.time() + 15
        while client.get_config(name) is None and time.time() < deadline:
            time.sleep(0.1)
        config = client.get_config(name)
        assert config is not None, f"{name} never arrived through the SDK's config sync"
        active = client.get_active_prompt(name)
        status, count = client.get_baseline_status(name)
        print(f"{name}: active={active} status={config.status} baseline={status}/{count}")
        assert active == os.environ["EXPECT_ACTIVE"], f"active prompt {active!r}"
        assert config.status == os.environ["EXPECT_STATUS"], f"status {config.status!r}"
        assert status == os.environ["EXPECT_BASELINE"], f"baseline status {status!r}"
    finally:
        client.stop()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
