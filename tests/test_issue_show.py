"""`issues show` prints the issue as written: code blocks, logs and links kept, every reply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues
from issueminer.store import Store
from issueminer.text import plain_text, render_html, render_markdown

# A body that is nothing but a fenced log of two ranks (MPI's "[rank,local]<stream>:" prefix).
FENCED_ONLY = """```
[1,0]<stderr>:Traceback (most recent call last):
[1,0]<stderr>:  File "train_ddp.py", line 58, in <module>
[1,0]<stderr>:    hvd.broadcast_parameters(model.state_dict(), root_rank=0)


[1,1]<stderr>:qbx-node7:31337:31401 [1] NCCL INFO Channel 00 : 1[3b000] -> 0[1a000] via P2P/IPC
[1,0]<stderr>:RuntimeError: ncclCommInitRank failed: unhandled system error (NCCL_DEBUG=INFO)
```"""

TEMPLATE = """<!-- Please fill in the form below. Questions go to the forum first. -->
**Environment:**
1. Framework: (TensorFlow, Keras, PyTorch, MXNet) PyTorch
2. Framework version: 1.9.1
3. Horovod version: 0.22.1
4. MPI version: Open MPI 4.1.1

**Checklist:**
1. Did you search issues to find if somebody asked this question before? Yes
2. If your question is about hang, did you read [this doc](https://hvd.example/trouble.rst)? Yes

**Your question:**
Installing on our cluster fails while compiling; the log ends like this:

    Running setup.py install for horovod ... error
    ERROR: Command errored out with exit status 1:
     command: /opt/venv/bin/python3 -u -c 'import sys, setuptools'
        CMake Error at CMakeLists.txt:12 (message):
          gloo requires cmake 3.13 or newer
    ERROR: Failed building wheel for horovod

What cmake does horovod need (see [the install guide](https://horovod.example/install.html))?
"""

SO_BODY = (
    "<p>On two nodes <code>init_process_group</code> never returns:</p>"
    '<pre><code>dist.init_process_group("nccl", init_method="tcp://10.0.0.1:23456",\n'
    "                        rank=rank, world_size=2)\n"
    "if x &lt; 3:\n    pass\n</code></pre>"
    '<p>I followed <a href="https://pytorch.example/ddp">the tutorial</a>.</p>'
    "<ul><li>NCCL 2.10</li><li>two V100 per node</li></ul>"
)
SO_ANSWER = "<p>Open port <code>23456</code> in the firewall on the master.</p>"


@pytest.fixture
def shown_db(tmp_path: Path) -> str:
    records = [
        {
            "url": "https://github.com/horovod/horovod/issues/90001",
            "source": "github",
            "title": "ncclCommInitRank failed on two ranks",
            "body": FENCED_ONLY,
            "answers": [
                {"body": "Can you run with `NCCL_DEBUG=INFO`?", "author": "maint"},
                {"body": "It was the GPU memory: a second job held it. Closing.", "author": "op"},
            ],
        },
        {
            "url": "https://github.com/horovod/horovod/issues/90002",
            "source": "github",
            "title": "Which cmake for horovod 0.22?",
            "body": TEMPLATE,
        },
        {
            "url": "https://stackoverflow.com/questions/70000001",
            "source": "stackoverflow",
            "title": "init_process_group hangs on two nodes",
            "body": SO_BODY,
            "answers": [{"body": SO_ANSWER, "accepted": True, "score": 7, "author": "helper"}],
        },
    ]
    path = tmp_path / "issues.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'show.db'}"
    store = Store(url)
    import_issues(store, path)
    store.close()
    return url


def _show(runner, url: str, key: str, *options: str):
    result = runner.invoke(app, ["issues", "show", key, "--db", url, *options])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_body_that_is_one_fenced_log_is_shown_whole(shown_db, runner) -> None:
    assert plain_text(FENCED_ONLY, "github") == ""  # what `show` printed before: nothing
    shown = _show(runner, shown_db, "https://github.com/horovod/horovod/issues/90001")
    for line in FENCED_ONLY.splitlines():
        assert line in shown.splitlines()  # every line, blank ones inside the fence too
    assert "[1,0]<stderr>:RuntimeError: ncclCommInitRank failed" in shown
    # both comments, in thread order, after the body
    first, second = shown.index("NCCL_DEBUG=INFO`?"), shown.index("a second job held it")
    assert shown.index("```") < first < second
    assert shown.count("--- comment") == 2 and "by maint" in shown


def test_template_code_and_links_survive(shown_db, runner) -> None:
    shown = _show(runner, shown_db, "https://github.com/horovod/horovod/issues/90002")
    assert "Please fill in the form" not in shown  # GitHub hides template comments too
    indented = [line for line in TEMPLATE.splitlines() if line.startswith("    ")]
    assert len(indented) == 6 and all(line in shown.splitlines() for line in indented)
    assert "[this doc](https://hvd.example/trouble.rst)? Yes" in shown
    assert "[the install guide](https://horovod.example/install.html))?" in shown
    assert "**Your question:**" in shown and "3. Horovod version: 0.22.1" in shown
    raw = _show(runner, shown_db, "https://github.com/horovod/horovod/issues/90002", "--raw")
    assert TEMPLATE.strip() in raw


def test_stack_overflow_html_is_shown_as_markdown_with_its_answer(shown_db, runner) -> None:
    shown = _show(runner, shown_db, "https://stackoverflow.com/questions/70000001")
    assert "On two nodes `init_process_group` never returns:" in shown
    assert "```\ndist.init_process_group(" in shown
    assert "                        rank=rank, world_size=2)\nif x < 3:\n    pass\n```" in shown
    assert "[the tutorial](https://pytorch.example/ddp)" in shown
    assert "- NCCL 2.10\n- two V100 per node" in shown
    assert "--- answer by helper, accepted, score 7" in shown
    assert "Open port `23456` in the firewall" in shown
    raw = _show(runner, shown_db, "https://stackoverflow.com/questions/70000001", "--raw")
    assert SO_BODY in raw and "<code>23456</code>" in raw


def test_show_json_holds_body_rendering_and_replies(shown_db, runner) -> None:
    key = "https://stackoverflow.com/questions/70000001"
    data = json.loads(_show(runner, shown_db, key, "--format", "json"))
    assert data["body"] == SO_BODY and data["rendered"] == render_html(SO_BODY)
    [answer] = data["replies"]
    assert answer["accepted"] is True and answer["score"] == 7 and answer["kind"] == "answer"
    assert answer["body"] == SO_ANSWER and answer["rendered"].startswith("Open port `23456`")


def test_prose_reading_keeps_link_ends_and_mpi_prefixes() -> None:
    """The prose the classifier and selection read: a link's ")" is not part of its URL
    and "<stderr>" is not an HTML tag; real inline tags and comments still go."""
    text = plain_text(
        "See [guide](https://a.example/x_(y)) then retry.\n"
        "[1,0]<stderr>: died <b>twice</b> <!-- hidden -->",
        "github",
    )
    assert "[guide](URL)) then retry." in text
    assert "[1,0]<stderr>: died twice" in text and "hidden" not in text and "<b>" not in text
    assert render_markdown("a\r\n\r\n\r\n\r\nb") == "a\n\nb"
