import pytest


@pytest.mark.django_db(transaction=True)
def test_dump(client, service_workers, ai_ready):
    out = []
    for path in ["/metrics", "/services/ai/metrics", "/services/exec-risk/metrics", "/services/analytics/metrics"]:
        text = client.get(path).content.decode()
        out.append("#### " + path + "\n" + text)
    open("/tmp/mon/dump.txt", "w").write("\n".join(out))
