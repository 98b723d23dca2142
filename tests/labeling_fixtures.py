"""A small labelling world shared by the labelling, web app and browser tests."""

from __future__ import annotations

from issueminer.collect.ingest import upsert_issues, upsert_replies
from issueminer.ids import parse_issue_url
from issueminer.store import Store

HOSTILE_BODY = (
    "<p>Hang in allreduce <script>window.__pwned = 'script'</script></p>"
    "<img src=x onerror=\"window.__pwned = 'onerror'\">"
    '<p><a href="javascript:window.__pwned = \'link\'" id="evil">click me</a></p>'
    "<p onmouseover=\"window.__pwned = 'hover'\">hover here</p>"
    "<pre><code>hvd.init()\nRuntimeError: NCCL error &lt;unhandled&gt;</code></pre>"
)


def add_issues(store: Store, n: int = 12, hostile: bool = True) -> list[str]:
    """n issues, half from each source; the first one's body tries to run script."""
    records, replies = [], {}
    for i in range(n):
        if i % 2 == 0:
            url = f"https://stackoverflow.com/questions/{95_000_000 + i}"
            body = HOSTILE_BODY if hostile and i == 0 else f"<p>Training job {i} fails.</p>"
            source = "stackoverflow"
        else:
            url = f"https://github.com/horovod/horovod/issues/{95_000 + i}"
            body = f"Worker {i} hangs.\n\n```\nhorovodrun -np 2 python train.py\n```"
            source = "github"
        ref = parse_issue_url(url)
        records.append(
            {
                "uid": ref.uid,
                "source": source,
                "origin": ref.origin,
                "native_id": ref.native_id,
                "url": ref.url,
                "title": f"Issue {i}",
                "body": body,
                "text": f"text {i}",
            }
        )
        replies[ref.uid] = [
            {
                "native_id": "a1",
                "kind": "answer",
                "body": "<p>Use NCCL.</p>"
                if source == "stackoverflow"
                else "Try `NCCL_DEBUG=INFO`.",
                "accepted": True,
                "author": "helper",
            }
        ]
    with store.session() as session:
        upsert_issues(session, records)
        upsert_replies(session, replies)
    return [r["uid"] for r in records]


FAULT = {
    "issue_type": "fault",
    "specific": True,
    "stage": "training & evaluation",
    "inner_category": "program failure",
    "leaf_symptom": "out of memory",
    "fix_patterns": ["fix batch size"],
}
HOWTO = {
    "issue_type": "how-to question",
    "howto_topic": "communication",
    "howto_subtopic": "backend",
}


APP_BASE = "http://127.0.0.1:8765"  # the annotation app's default address
APP_COOKIE = "issueminer_8765"  # its sign-in cookie there


def app_client(settings, sign_in: bool = True):
    """Starlette's test client on the annotation app, signed in through the link
    `issueminer label` prints for the settings' annotator (every start has its secret)."""
    from starlette.testclient import TestClient

    from issueminer.label.webapp.app import create_app

    client = TestClient(create_app(settings), base_url=APP_BASE, follow_redirects=False)
    if sign_in and settings.annotator:
        signed = client.get(f"/?t={settings.link_token(settings.annotator)}")
        assert signed.status_code == 200, signed.text
    return client
