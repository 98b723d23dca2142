"""Serve the fake Stack Exchange and GitHub APIs with the test corpora, for trying crawls.

python -m tests.fakes.serve      # prints the environment to point `make crawl` at them
"""

from __future__ import annotations

import time

from tests import test_crawl_github, test_crawl_stackoverflow
from tests.fakes.github import FakeGitHub, make_issue
from tests.fakes.stackexchange import FakeStackExchange


def main() -> None:
    questions, answers, comments, _ = test_crawl_stackoverflow.corpus(n_per_tag=60)
    issues, gh_comments, _ = test_crawl_github.corpus(n=40)
    for repo in ("tensorflow/tensorflow", "keras-team/keras"):
        issues[repo] = [
            make_issue(
                repo, 1, "MirroredStrategy with multiple GPUs hangs", "x", "2021-01-01T00:00:00Z"
            )
        ]
    with (
        FakeStackExchange(questions, answers, comments) as se,
        FakeGitHub(issues, gh_comments) as gh,
    ):
        print(
            f"export ISSUEMINER_STACKEXCHANGE_API={se.url} ISSUEMINER_GITHUB_API={gh.url}",
            flush=True,
        )
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
