"""Stack Overflow through the Stack Exchange data dump (Posts.xml, Comments.xml), at close to
the speed of reading the file.

Almost every row of a dump is rejected without being parsed. Over a whole piece of the
file at once, a native multi-pattern search (Aho-Corasick) finds every `Tags="` and a
second one, over the short values after them side by side, finds the study tags
(`TagFinder`); answers are found by `ParentId="<id>"` for all kept questions in one such
search. Only those candidate rows are parsed (as XML, one line each) and judged by the
study's `Selection` (after a cheap `KeywordGate` that only rejects), and kept questions
become the envelopes the API crawler stores (`question_envelope`), so an issue found both
ways is one row.

Two ways through a file, with the same result:
- ranges (an uncompressed file): the file is cut into pieces on line boundaries; every
  piece is scanned for questions, stored with the answers that follow them in the same
  piece, then every piece for the other answers of all kept questions (answers merged in
  from another question can come before their question). Pieces run in this process, in
  this process and worker processes beside it, or as tasks on a Dask cluster; they are
  parsed, judged and made into envelopes where they run, and this process stores them.
- stream (.gz, .7z, stdin): one pass, questions and then answers block by block; answers
  that came before their question are found afterwards by a second pass over the part
  of the file before it, for the questions whose AnswerCount says some are missing.

Bad input (a malformed row, an invalid character reference, a non-UTF-8 byte, a row with a
DOCTYPE or entity declaration, a file cut short, a compressed file damaged part way) is
counted and reported with its line number and skipped; what came before a damaged part is
stored. A file that cannot be scanned at all (no rows, a DTD in its head, compressed data
damaged from its start) is refused before the scan (`BadInput`). Only rows the pre-filter
lets through are parsed, so only those can be found malformed: a broken row that carries
no study tag and answers no kept question is never looked at, as it could not be kept.

Where things are, from the bottom up:
- `rows`: the format's quirks; one row parsed, and in the API's shape (items, envelopes)
- `keyword_gate`: the cheap check that turns away questions no term can match
- `byte_patterns`: the native searches for study tags and ids (`TagFinder`, `IdMatcher`)
- `criteria`: what decides a question (`Criteria`), and the store's known question ids
- `file_pieces`: a plain file cut into pieces on line ends, and mapped into memory
- `streams`: opening a dump (plain, .gz, .7z, stdin) and reading it in blocks of lines
- `scans`: the scans of a buffer for questions or replies, and one piece of one phase
- `executors`: where pieces run (this process, worker processes, a Dask cluster)
- `commit_policy`: when the scan commits, and what the checkpoint records
- `dump_crawler`: the phases of a scan, through one loop, into the store (`DumpCrawler`)
- `summary`: what a finished scan reports (`ScanSummary`, `findings_report`)
"""

from issueminer.collect.sodump.criteria import Criteria, known_questions
from issueminer.collect.sodump.dump_crawler import DumpCrawler
from issueminer.collect.sodump.executors import DaskExecutor, ProcessExecutor, SerialExecutor
from issueminer.collect.sodump.file_pieces import parse_size
from issueminer.collect.sodump.input_identity import checked_inputs
from issueminer.collect.sodump.streams import BadInput, DumpError, DumpSource, open_source
from issueminer.collect.sodump.summary import SUMMARY_FINDINGS, ScanSummary, findings_report

__all__ = [
    "SUMMARY_FINDINGS",
    "BadInput",
    "Criteria",
    "DaskExecutor",
    "DumpCrawler",
    "DumpError",
    "DumpSource",
    "ProcessExecutor",
    "ScanSummary",
    "SerialExecutor",
    "checked_inputs",
    "findings_report",
    "known_questions",
    "open_source",
    "parse_size",
]
