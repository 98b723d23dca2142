"""A labelled corpus of threads written to look like real ones, for the classifier's tests.

What the real threads of a distributed-training study show, and this corpus imitates:

* the label follows the resolution: the opening post shows a symptom several causes share
  (an `ncclCommInitRank failed` traceback, a hang, a failed pip build), and only a later
  comment (or the accepted answer) says what it was and what fixed it;
* a project's issue template (environment block, checklist naming "hang", "docker", the
  "troubleshooting guide") sits in faults and questions alike, while its header ("Bug
  report:" / "Your question:") tells them apart;
* bodies are mostly logs: NCCL INFO lines repeated by every rank, pip build output,
  tracebacks behind MPI's `[1,0]<stderr>:` prefix, with a few error lines that matter;
* most faults have one fix pattern, some two.

Every text here is invented. The same seed gives the same corpus.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from issueminer.store.label_fields import LABEL_CELLS

# (stage, inner category, leaf symptom), fix patterns (the usual one first), the kinds of
# opening post, what the resolving reply says and what a second fix adds. Causes
# that share an opening can only be told apart by their
# resolution.
CAUSES = {
    "oom": (
        ("training & evaluation", "program failure", "out of memory"),
        ["fix batch size", "fix memory/core setting"],
        ("nccl_init",),
        [
            "Turned out the GPU memory was already taken by a second job on the node; "
            "with a smaller batch size it runs.",
            "Found it: the GPUs were nearly full, nvidia-smi showed 15 of 16 GB used before "
            "we started. Lowering the per-GPU batch size fixed it.",
        ],
        "set memory growth so TensorFlow does not grab all GPU memory",
    ),
    "network": (
        ("communication setup", None, "setup failure"),
        ["fix network setting", "fix communication configuration"],
        ("nccl_init",),
        [
            "The problem was the network interface: NCCL picked docker0. Setting "
            "NCCL_SOCKET_IFNAME=eth0 on every host solved it.",
            "Solved: the nodes could not reach each other over the interface NCCL chose; "
            "pinning the interface with NCCL_SOCKET_IFNAME and opening the ports fixed it.",
        ],
        "also pass the interface to horovodrun with --network-interface",
    ),
    "version": (
        ("package build & import", None, "import error"),
        ["fix dependency version", "reinstall framework in a fresh environment"],
        ("undefined_symbol", "pip_build"),
        [
            "Turned out pip had upgraded torch after horovod was built, so the versions "
            "did not match. Pinning torch to the version horovod was compiled against fixed it.",
            "Root cause was a version mismatch between the framework and the horovod "
            "extension; pinning the older framework release made it work.",
        ],
        "reinstall everything in a fresh virtualenv afterwards",
    ),
    "build": (
        ("package build & import", None, "installation & build failure"),
        ["fix build/install configuration", "install missing dependency"],
        ("pip_build", "undefined_symbol"),
        [
            "Fixed: cmake was too old and the build flags were wrong. With a newer cmake and "
            "HOROVOD_GPU_OPERATIONS=NCCL set the wheel builds.",
            "The issue was the build configuration: HOROVOD_WITH_PYTORCH was not set and the "
            "compiler was not found. Setting the build flags solved it.",
        ],
        "the missing package was the MPI development headers, installing them helped",
    ),
    "timeout": (
        ("communication setup", None, "hang and timeout"),
        ["fix timeout setting"],
        ("hang",),
        [
            "Turned out the rendezvous timed out before the slow nodes were up; raising the "
            "start timeout with --start-timeout 600 fixed it.",
            "Resolved by increasing the timeout: the first node needs minutes to load the "
            "dataset and the others gave up waiting.",
        ],
        "",
    ),
    "device": (
        ("training & evaluation", "program failure", "device error"),
        ["fix device assignment"],
        ("hang",),
        [
            "The problem was the device assignment: every process used GPU 0. Pinning each "
            "rank to its local rank with torch.cuda.set_device(hvd.local_rank()) fixed it.",
            "Solved, all workers were on the same device; setting CUDA_VISIBLE_DEVICES from "
            "the local rank gave each process its own GPU.",
        ],
        "",
    ),
}
# How-to topics: the question is vague; the answer says what it was about.
TOPICS = {
    "communication": [
        "For this you choose the collective backend: allreduce over NCCL for GPUs, Gloo "
        "for CPUs, and the controller with --gloo or --mpi.",
        "That is decided by the communication layer; tensor fusion batches the allreduce "
        "calls and NCCL runs them between the GPUs.",
    ],
    "environment configuration": [
        "Set it through environment variables before launching: HOROVOD_* and NCCL_* "
        "variables are read at start, exported on every host.",
        "This is an environment setting; export the variable in the job script so every "
        "host sees the same configuration.",
    ],
    "horovod build": [
        "You need to build horovod from source with HOROVOD_GPU_OPERATIONS=NCCL and "
        "HOROVOD_WITH_TENSORFLOW=1, then check the build with horovodrun --check-build.",
        "Reinstall with pip install --no-cache-dir horovod after setting the build flags, "
        "so the extension compiles against your framework.",
    ],
    "performance": [
        "Scaling efficiency depends on the network: measure images per second with the "
        "synthetic benchmark and enable the timeline to see where time goes.",
        "Throughput drops because gradients wait on the slowest link; try fp16 compression "
        "and a larger fusion buffer, then compare the speed.",
    ],
}
QUESTIONS = [
    "How should I set this up for our cluster?",
    "What is the recommended way to do this with horovod?",
    "Is there a documented way to do this, or an example?",
    "We are new to distributed training. How is this supposed to work?",
]
QUESTION_TITLES = ["Question about {n} GPUs", "How to run on {n} nodes?", "Help needed"]
GENERIC_REPLIES = [
    "Can you share the full log with NCCL_DEBUG=INFO and the output of horovodrun --check-build?",
    "Which versions of the framework, NCCL and MPI are you using?",
    "Does the same happen with the example scripts from the repository?",
    "I see the same thing on our cluster, any news?",
]
UNHELPFUL = [
    "Fixed it, thanks for the help!",
    "Solved on our side, closing.",
    "It works now, no idea what changed.",
]
_RESOLVING = re.compile(
    r"turned out|found it:?|the problem was|solved[:,]?|fixed[:.]?|root cause was|"
    r"the issue was|resolved by",
    re.I,
)


def _unmarked(text: str) -> str:
    """A resolution with none of the words that say something resolved the issue."""
    text = _RESOLVING.sub("", text).replace(" it.", ".")
    return re.sub(r"\s+\.", ".", text).strip(" :,")


HOSTS = ["gpu-a01", "gpu-a02", "node17", "dgx-3", "worker-b4", "trn-c12"]


def _nccl_init_log(rng: random.Random) -> list[str]:
    host, pid = rng.choice(HOSTS), rng.randint(1000, 60000)
    lines = []
    for _ in range(rng.randint(6, 24)):
        rank = rng.randint(0, 3)
        lines.append(
            f"[1,{rank}]<stdout>:{host}:{pid}:{pid + rank} [{rank}] NCCL INFO "
            f"Channel {rng.randint(0, 15):02d} : {rank}[{rng.randint(0, 99)}000] -> "
            f"{(rank + 1) % 4}[{rng.randint(0, 99)}000] via P2P/IPC"
        )
    lines += [
        "[1,0]<stderr>:Traceback (most recent call last):",
        f'[1,0]<stderr>:  File "/home/{host}/train.py", line {rng.randint(20, 300)}, in <module>',
        "[1,0]<stderr>:    hvd.broadcast_parameters(model.state_dict(), root_rank=0)",
        "[1,0]<stderr>:RuntimeError: ncclCommInitRank failed: unhandled system error",
    ]
    return lines


def _undefined_symbol_log(rng: random.Random) -> list[str]:
    version = f"3.{rng.randint(6, 10)}"
    return [
        "Traceback (most recent call last):",
        '  File "<string>", line 1, in <module>',
        f'  File "/opt/conda/lib/python{version}/site-packages/horovod/torch/__init__.py", '
        f"line {rng.randint(20, 60)}, in <module>",
        f"ImportError: /opt/conda/lib/python{version}/site-packages/horovod/torch/"
        f"mpi_lib_v2.cpython-{version.replace('.', '')}-x86_64-linux-gnu.so: undefined symbol: "
        f"_ZN3c10{rng.randint(10, 99)}detail{rng.randint(100, 999)}Ev",
    ]


def _pip_build_log(rng: random.Random) -> list[str]:
    lines = [
        "Collecting horovod",
        f"  Downloading horovod-0.{rng.randint(19, 28)}.{rng.randint(0, 3)}.tar.gz (3.1 MB)",
        "Building wheels for collected packages: horovod",
        "  Running setup.py bdist_wheel for horovod ... error",
    ]
    for _ in range(rng.randint(5, 20)):
        lines.append(
            f"  -- Looking for {rng.choice(['pthread.h', 'CUDA', 'NCCL', 'MPI_CXX'])} - found"
        )
    lines += [
        "  ERROR: Command errored out with exit status 1:",
        "  ERROR: Failed building wheel for horovod",
        "  Running setup.py clean for horovod",
        "Failed to build horovod",
    ]
    return lines


def _hang_log(rng: random.Random) -> list[str]:
    lines = []
    for step in range(rng.randint(4, 12)):
        lines.append(
            f"[1,0]<stdout>:2023-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} "
            f"1{rng.randint(0, 9)}:{rng.randint(10, 59)}:{rng.randint(10, 59)} INFO "
            f"waiting for rendezvous step {step}"
        )
    lines.append(
        "[1,0]<stderr>:[2023-03-04 10:11:12] WARNING: One or more tensors were submitted "
        "to be reduced, gathered or broadcasted by subset of ranks and are waiting"
    )
    return lines


OPENINGS = {
    "nccl_init": (
        ["ncclCommInitRank failed with {n} GPUs", "Training crashes at start on {n} nodes"],
        "Training starts on {n} nodes and dies while broadcasting the parameters:",
        _nccl_init_log,
    ),
    "undefined_symbol": (
        ["import horovod.torch fails", "horovod import error after upgrade"],
        "After updating the environment, importing horovod fails right away:",
        _undefined_symbol_log,
    ),
    "pip_build": (
        ["pip install horovod fails", "Cannot install horovod {v}"],
        "Installing horovod {v} with pip fails while building:",
        _pip_build_log,
    ),
    "hang": (
        ["Training hangs with {n} workers", "Job stuck after start on {n} nodes"],
        "With {n} processes the job never gets past the first step. The log stops here:",
        _hang_log,
    ),
}


def _template(rng: random.Random, header: str, text: str) -> str:
    framework = rng.choice(["TensorFlow", "PyTorch", "Keras"])
    environment = [
        "**Environment:**",
        f"1. Framework: {framework}",
        f"2. Framework version: {rng.randint(1, 2)}.{rng.randint(0, 12)}",
        f"3. Horovod version: 0.{rng.randint(19, 28)}.{rng.randint(0, 3)}",
        f"4. MPI version: {rng.choice(['Open MPI 4.0.3', 'MPICH 3.3', 'none (gloo)'])}",
        f"5. CUDA version: {rng.choice(['10.1', '11.3', '11.8'])}",
        f"6. NCCL version: 2.{rng.randint(4, 18)}.{rng.randint(1, 9)}",
        "",
        "**Checklist:**",
        "1. Did you search issues to find if somebody asked this question before? Yes",
        "2. If your question is about hang, did you read [this doc]"
        "(https://github.com/horovod/horovod/blob/master/docs/running.rst)? Yes",
        "3. If your question is about docker, did you read [this doc]"
        "(https://github.com/horovod/horovod/blob/master/docs/docker.rst)? "
        + rng.choice(["Yes", "No"]),
        "4. Did you check if you question is answered in the [troubleshooting guide]"
        "(https://github.com/horovod/horovod/blob/master/docs/troubleshooting.rst)? Yes",
        "",
    ]
    return "\n".join(environment) + f"\n**{header}**\n{text}\n"


@dataclass
class Thread:
    url: str
    source: str
    title: str
    body: str
    replies: list[dict] = field(default_factory=list)
    labels: dict = field(default_factory=dict)


def _fault(rng: random.Random, number: int) -> Thread:
    cause = rng.choice(sorted(CAUSES))
    path, fixes, opening, resolutions, second_fix_words = CAUSES[cause]
    titles, lead, log = OPENINGS[rng.choice(opening)]
    values = {"n": rng.randint(2, 16), "v": f"0.{rng.randint(19, 28)}"}
    text = lead.format(**values) + "\n\n```\n" + "\n".join(log(rng)) + "\n```\n"
    header = "Bug report:" if rng.random() < 0.85 else "Your question:"
    title = rng.choice(titles).format(**values)
    if rng.random() < 0.3:  # a fault asked as a question: the replies show it is broken
        text = rng.choice(QUESTIONS) + "\n\n" + text
        title = rng.choice(QUESTION_TITLES).format(**values)
    chosen = [fixes[0]]
    resolution = rng.choice(resolutions)
    if second_fix_words and rng.random() < 0.25:
        chosen.append(fixes[1])
        resolution += f" We also had to {second_fix_words}."
    roll = rng.random()
    if roll < 0.1:  # the reporter only says thanks: the label came from elsewhere
        resolution = rng.choice(UNHELPFUL)
    elif roll < 0.25:  # the resolution without the words that say it resolved anything
        resolution = rng.choice(["", "Update: ", "FYI "]) + _unmarked(resolution)
    replies = [{"body": rng.choice(GENERIC_REPLIES), "author": "maintainer"}]
    if rng.random() < 0.5:
        replies.append({"body": rng.choice(GENERIC_REPLIES), "author": "someone"})
    replies.append({"body": resolution, "author": "reporter"})
    if rng.random() < 0.3:
        replies.append({"body": "Thanks, closing.", "author": "maintainer"})
    labels = {
        "issue_type": "fault",
        "stage": path[0],
        "inner_category": path[1],
        "leaf_symptom": path[2],
        "fix_patterns": chosen,
    }
    return Thread(
        f"https://github.com/horovod/horovod/issues/{80000 + number}",
        "github",
        title,
        _template(rng, header, text),
        replies,
        labels,
    )


def _question(rng: random.Random, number: int) -> Thread:
    topic = rng.choice(sorted(TOPICS))
    values = {"n": rng.randint(2, 16), "v": f"0.{rng.randint(19, 28)}"}
    header = "Your question:" if rng.random() < 0.85 else "Bug report:"
    text = rng.choice(QUESTIONS)
    title = rng.choice(QUESTION_TITLES).format(**values)
    if rng.random() < 0.4:  # a question that pastes a log and reads like a fault
        titles, lead, log = OPENINGS[rng.choice(sorted(OPENINGS))]
        text = lead.format(**values) + "\n\n```\n" + "\n".join(log(rng)) + "\n```\n\n" + text
        title = rng.choice(titles).format(**values)
    replies = [{"body": rng.choice(TOPICS[topic]), "author": "maintainer", "accepted": True}]
    if rng.random() < 0.5:
        replies.insert(0, {"body": rng.choice(GENERIC_REPLIES), "author": "someone"})
    return Thread(
        f"https://github.com/horovod/horovod/issues/{80000 + number}",
        "github",
        title,
        _template(rng, header, text),
        replies,
        {"issue_type": "how-to question", "howto_topic": topic},
    )


def generate(size: int, seed: int = 18) -> list[Thread]:
    rng = random.Random(seed)
    return [(_fault if rng.random() < 0.6 else _question)(rng, n) for n in range(size)]


def write_files(threads: list[Thread], directory: Path) -> None:
    """issues.jsonl (with answers) and labels.csv (final labels), the importers' formats."""
    import csv

    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "issues.jsonl").open("w", encoding="utf-8") as handle:
        for thread in threads:
            record = {
                "url": thread.url,
                "source": thread.source,
                "title": thread.title,
                "body": thread.body,
                "state": "closed",
                "answers": thread.replies,
            }
            handle.write(json.dumps(record) + "\n")
    columns = ["url", "kind", "annotator", "round", *LABEL_CELLS]
    with (directory / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for thread in threads:
            labels = dict(thread.labels)
            labels["fix_patterns"] = " & ".join(labels.get("fix_patterns") or [])
            writer.writerow(
                {"url": thread.url, "kind": "final", "annotator": "adjudicator", **labels}
            )
