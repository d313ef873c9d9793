"""The DICOM upper layer (PS3.8) and DIMSE message plumbing (PS3.7): the lower of gateway/dicom's
two floors. The service roles (gateway/dicom/) sit on it; nothing here knows what a service does
with a message.

What lives here, named after the protocol layer as pynetdicom names its own files:
- the port: listener (the one port; pynetdicom's server without a port of its own), built from the
  service roles it is given (service_role: each role's contexts and handlers, one table for
  pynetdicom and the fast path);
- sockets and PDUs:
  acceptor (accepts connections, checks and negotiates the A-ASSOCIATE, picks the fast path or
  pynetdicom), association_request (the strict A-ASSOCIATE-RQ reader), association_policy (who may
  associate, socket options, timers), pdu_socket (buffered reads, fixed-size PDUs),
  association_events (what the event bus hears: associations opened, refused, closed, from both
  paths);
- DIMSE: dimse_command (the command set codec of the storage paths), pdu_flow (bounded outgoing
  P-DATA for pynetdicom's sender), receive_spool (where a received data set is written);
- the fast storage pair: storage_acceptor (receives C-STORE/C-ECHO on one thread) and
  storage_requestor (sends stored files to a PACS), both a pdu_connection.PduConnection (socket,
  reader, the lock that keeps outgoing PDUs whole, the close);
- pynetdicom_patches: every change to pynetdicom and every reach into its internals, behind one
  apply() and a few named functions, each with a version-pinned test.

Floor "dicom net" (tests/unit/test_layers.py): it may import pynetdicom, pydicom, the DICOM
vocabulary next door (gateway.dicom.status, gateway.dicom.sop_classes: codes and UIDs that import
nothing of ours, placed on this floor), gateway.buffer (the receive spool's disk-full check),
gateway.part10, gateway.config and the leaves (gateway.identity); never a role (gateway.dicom.*
outside net/ and the vocabulary) and never gateway.print.
"""
