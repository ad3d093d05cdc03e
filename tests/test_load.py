"""The load test's short mode: `stave run` under 50 loopback clients for 8 seconds.

The long mode is one command, `python -m benchmarks.load` (200 clients, 60 s); both run
`benchmarks.load.run_load`, and docs/reliability.md records the figures of each.
"""

from __future__ import annotations

import pytest

from benchmarks.load import problems, run_load

CLIENTS = 50
SECONDS = 8.0
UPLOADS = 4
RSS_CAP_MIB = 150.0  # the cap docs/reliability.md states


@pytest.mark.slow
def test_the_node_serves_50_clients_for_8_seconds_without_a_5xx_within_its_memory_cap() -> None:
    figures = run_load(CLIENTS, SECONDS, UPLOADS, RSS_CAP_MIB)
    statuses = figures["statuses"]
    print(figures)

    assert figures["server_errors"] == 0, statuses
    assert not [kind for kind in statuses if kind.split()[1].startswith("5")], statuses
    assert figures["failed_connections"] == {}
    assert figures["feed_errors"] == 0, figures["first_error_bodies"]
    # Every kind of request happened, and was answered as it should be.
    assert statuses.get("feed 200", 0) > 0
    assert statuses.get("range 206", 0) > 0
    assert figures["wrong_ranges"] == 0
    assert statuses.get("upload 201", 0) == UPLOADS
    assert figures["uploads_published"] == UPLOADS
    assert figures["uploads_missing_from_feed"] == []
    assert figures["requests"] == sum(statuses.values())
    assert figures["requests"] > CLIENTS * SECONDS  # more than one request a second per client
    # Memory was sampled about once a second while the clients ran, and stayed under the cap.
    assert figures["rss_samples"] >= SECONDS - 1
    assert 0 < figures["rss_idle_mib"] <= figures["rss_peak_mib"] < RSS_CAP_MIB
    assert figures["node_exit_code"] is None
    assert problems(figures) == []
