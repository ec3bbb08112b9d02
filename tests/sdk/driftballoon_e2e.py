"""End-to-end check of the real `driftballoon` SDK against a running server.

Environment: DRIFTBALLOON_API_KEY, DRIFTBALLOON_BASE_URL. Exits non-zero on any failure.
Logs with `.invoke()` and with `.submit()` + `stop()`, then reads everything back through the
SDK's own `get_config` / `get_baseline_status` / `get_active_prompt`.
"""

import os
import sys
import time

from driftballoon import DriftBalloon

KEY = os.environ["DRIFTBALLOON_API_KEY"]
BASE = os.environ["DRIFTBALLOON_BASE_URL"]
INVOKED = 7
SUBMITTED = 24  # below the 30 at which the reported count is capped


def wait_for_config(client, name, expected_count, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        client._sync_config()  # what the SDK's background thread does every sync_interval
        config = client.get_config(name)
        if config is not None and config.baseline_sample_count >= expected_count:
            return config
        time.sleep(0.2)
    raise AssertionError(f"{name}: config not seen with {expected_count} samples: {client.get_config(name)}")


def main():
    # Background thread off (auto_start=False) so that every request is the test's own.
    writer = DriftBalloon(api_key=KEY, base_url=BASE + "/", auto_start=False)
    for i in range(INVOKED):
        writer.log(name="sdk-invoke", response=f"Invoked answer number {i}.", prompt=f"q{i}", model="gpt-4o").invoke()

    for i in range(SUBMITTED):
        writer.log(name="sdk-submit", response=f"Queued answer number {i}.", prompt=f"q{i}", model="gpt-4o-mini").submit()
    assert len(writer._log_queue) == SUBMITTED
    writer._running = True  # stop() flushes only when it believes it was started
    writer.stop()
    assert writer._log_queue == [], f"logs left in the SDK queue: {len(writer._log_queue)}"

    # A background-started client, the way apps use it.
    reader = DriftBalloon(api_key=KEY, base_url=BASE, sync_interval=0.2)
    try:
        invoked = wait_for_config(reader, "sdk-invoke", INVOKED)
        submitted = wait_for_config(reader, "sdk-submit", SUBMITTED)
        assert reader.get_baseline_status("sdk-invoke") == ("learning", INVOKED), reader.get_baseline_status("sdk-invoke")
        assert reader.get_baseline_status("sdk-submit") == ("learning", SUBMITTED), reader.get_baseline_status("sdk-submit")
        assert reader.get_active_prompt("sdk-invoke") == "a"
        for config in (invoked, submitted):
            assert config.status == "active", config
            assert config.min_baseline_samples == 30 and config.drift_threshold == 0.7, config
            assert config.length_drift_threshold == 1.5 and config.auto_switch_enabled is True, config
    finally:
        reader.stop()
    print(f"driftballoon SDK e2e ok: {INVOKED} invoked + {SUBMITTED} submitted logs arrived")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
