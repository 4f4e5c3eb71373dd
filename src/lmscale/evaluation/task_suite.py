"""`lmscale task-suite`: generate the offline lm-eval task suite."""

from __future__ import annotations

import logging

from lmscale import jobs
from lmscale.evaluation.offline_tasks import write_suite
from lmscale.io.files import folder_of
from lmscale.jobs import TaskSuiteJob

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    jobs.add_argument(parser, TaskSuiteJob)
    parser.add_argument("--heldout", nargs="?",
                        help="held-out JSONL split (a 'text' field per document) for the text tasks")
    parser.add_argument("--tokenizer", metavar="TOKENIZER_JSON",
                        help="the models' tokenizer.json (with the job's context): documents whose answers "
                             "lm-eval would not score as written, in half the context, are passed over")
    parser.add_argument("--out", required=True, help="folder to write the suite to")


def main(args) -> int:
    job = args.job
    tokenizer = folder_of([args.tokenizer], ["tokenizer.json"]) if args.tokenizer else None
    manifest = write_suite(args.out, job, args.heldout, tokenizer)
    log.info("wrote %d tasks to %s", len(manifest["tasks"]), args.out)
    return 0
