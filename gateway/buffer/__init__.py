"""The embedded buffer: what the gateway has received and still owes someone, kept durably.

"Nothing acknowledged is ever lost" lives here: a received object is acknowledged only after its
file is fsynced in place and its index row and jobs are committed in one SQLite transaction.

What lives here:
  intake.py       the one door in: a received Part-10 file plus its source (source.py: AE:<title>,
                  MEDIA:<label>, CAPTURE:<device>) is checked, refused with a reason, or taken
  ingest.py       taking it: place the file (files.py), index it (index.py), queue its routes
  files.py        the instance files on disk and the durable way they get there
  index.py        the SQLite index (patient/study/series/instance, jobs), migrations.py its schema
                  versions, lock.py one service per buffer
  queue.py        the durable job queue and its operator verbs (retry, dead-letter, re-forward);
                  job_kinds.py how the verbs name each kind of job; worker.py the one QueueWorker
                  every kind of outgoing work runs in
  commitments.py  storage commitment transactions, until their report
  retention.py    which delivered instances may leave, oldest first, and when

Floor: above config and part10, below the print domain and the DICOM roles
(tests/unit/test_layers.py). It may import gateway.config, gateway.part10, gateway.routing (same
floor), the leaves (events, logs, identity), drivers/ and image/; never gateway.print,
gateway.dicom, gateway.app or gateway.cli: the roles call the buffer, never the other way round.
"""
