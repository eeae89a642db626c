from trading.observability.health import Probe, Status, evaluate_service
from trading.observability.heartbeat import WorkerBeat
from trading.observability.services import AI, EXEC_RISK, service_for_queue

NOW = 1_800_000_000.0
UP = Probe(True, 0.001)


def beat(node="ai@host", age=0.2, started_ago=60.0, queues=("ai",)):
    return WorkerBeat(node, "host", 4242, queues, NOW - started_ago, NOW - age)


def evaluate(workers, redis=UP, database=UP, service=AI):
    return evaluate_service(
        service, workers, redis=redis, database=database, now=NOW, heartbeat_interval=0.5
    )


def test_a_service_with_a_live_worker_and_answering_dependencies_is_ready():
    report = evaluate([beat()])
    assert report.ready
    assert report.status is Status.PASS
    assert report.health_json()["checks"]["workers"]["live"] == 1


def test_a_service_without_workers_is_not_ready_and_says_why():
    report = evaluate([])
    assert not report.ready
    assert report.status is Status.FAIL
    body = report.ready_json()
    assert body["failing"] == ["workers"]
    assert "no live worker consumes queue ai" in body["checks"]["workers"]["output"]


def test_redis_or_database_failing_makes_the_service_not_ready():
    down = Probe(False, 0.5, "TimeoutError: timed out")
    assert evaluate([beat()], redis=down).ready_json()["failing"] == ["redis"]
    assert evaluate([beat()], database=down).ready_json()["failing"] == ["database"]


def test_a_late_heartbeat_warns_but_keeps_the_service_ready():
    report = evaluate([beat(age=1.5)])
    assert report.ready
    assert report.status is Status.WARN
    assert "late heartbeat from ai@host" in report.health_json()["checks"]["workers"]["output"]


def test_uptime_is_that_of_the_longest_running_worker():
    report = evaluate([beat("ai@a", started_ago=10), beat("ai@b", started_ago=300)])
    assert report.uptime_seconds == 300
    assert evaluate([]).uptime_seconds == 0


def test_a_worker_serves_every_service_whose_queue_it_consumes():
    worker = beat(queues=("ai", "exec_risk", "default"))
    assert worker.services == ("ai", "exec-risk")
    assert evaluate([worker], service=EXEC_RISK).ready


def test_queues_map_to_services():
    assert service_for_queue("exec_risk") is EXEC_RISK
    assert service_for_queue("celery") is None
    assert service_for_queue(None) is None


def test_worker_records_survive_a_round_trip_through_redis_fields():
    worker = beat()
    assert WorkerBeat.from_mapping({**worker.to_mapping(), "tasks_done": "0"}) == worker
