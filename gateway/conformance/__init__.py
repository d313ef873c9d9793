"""The DICOM Conformance Statement (PS3.2), rendered from the tables the code itself uses.

What is generated and from where, so that the statement cannot drift from the code:

- the presentation contexts the listener accepts: the listener's own pynetdicom AE
  (`Listener(config, roles).ae.supported_contexts`), built from the very service roles app.py
  wires (VerificationSCP, StoreSCP, CommitmentSCU, PrintSCP), the table the fast path and
  pynetdicom's server both negotiate with;
- the storage SOP classes: StoreSCP's contexts (sop_classes.storage_sop_classes), names from
  pydicom's UID dictionary (retired ones marked), or pynetdicom's for the few pydicom lacks;
- the contexts the forwarder and `echo` propose: store_scu.FALLBACK, MAX_CONTEXTS, echo._SYNTAXES;
- the statuses: store_scp.STATUS_OF (the intake's refusals as C-STORE statuses), print's status
  constants (print/validate.py, print_scp.py), the forwarder's retry rule
  (status.is_transient_store_failure), commitment.FAILURE_REASONS; meanings from pynetdicom's
  PS3.7 Annex C tables;
- the association rejections: the (result, source, reason) constants of the policy and the
  request check;
- timers, limits, titles: the config schema's defaults (gateway/config/), said as "configurable,
  default X";
- media: media/profiles.PROFILES and media/export.PROFILE_FOR;
- character sets: pydicom's table of the Specific Character Set terms it decodes.

The prose between the tables says what each behaviour is. A refusal the intake gains
(store_scp.STATUS_OF) or a timer `[timers]` gains without a sentence (storage._REFUSAL_WHEN,
networking._TIMER_MEANING) makes `render` raise KeyError naming it, so
tests/unit/test_conformance.py fails until the sentence is written. The print statuses and the
rejection conditions are keyed by the code's constants but not discovered: a new one needs a line
by hand (print_management._PRINT_WHEN, acceptance._REJECTIONS).

One module per part of the statement, named with PS3.2's terms (the package was one 995-line
module; the split changed no byte of the output):

  tables            the shared helpers: UID names, status meanings, config values, Markdown tables
  contexts          the presentation contexts the listener accepts (AcceptedContext, accepted_contexts)
  overview          sections 1 to 3: overview, table of contents, introduction
  networking        section 4's frame (implementation model, SOP classes, association policies,
                    timers, interfaces, configuration), section 6 character sets, section 7 security
  initiation        4.2.1.3 association initiation: forwarder, storage commitment, `echo`
  worklist          4.2.1.3 worklist, capture and MPPS activities
  acceptance        4.2.1.4 association acceptance: rejections, Table 4.2-4
  storage           the Storage SCP's statuses and attribute coercion
  print_management  the Print Management SCP
  query_retrieve    C-FIND SCP, retrieve SCP, Q/R SCU
  media             section 5 media interchange

Used by `dicom-gateway conformance [--output FILE]`; the committed CONFORMANCE.md is its output for
the default config (tests/unit/test_conformance.py compares them).
"""

from __future__ import annotations

from importlib import metadata

from gateway.config import Config

from .contexts import QR_FIND, AcceptedContext, accepted_contexts, listener_roles
from .media import MEDIA_STORAGE_DIRECTORY, _media
from .networking import _charsets, _networking, _security
from .overview import _contents, _introduction, _overview
from .tables import uid_name

__all__ = ["AcceptedContext", "GENERATED_BY", "MEDIA_STORAGE_DIRECTORY", "PRODUCT", "QR_FIND",
           "accepted_contexts", "listener_roles", "render", "uid_name"]

PRODUCT = "DICOM edge gateway"
GENERATED_BY = "dicom-gateway conformance --output CONFORMANCE.md"


def _version() -> str:
    try:
        return metadata.version("dicom-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def render(config: Config | None = None) -> str:
    """The statement as Markdown, for `config` (default: the schema's defaults, which is what the
    committed CONFORMANCE.md shows). Raises KeyError naming a status, rejection or timer of the
    code that has no sentence here yet (see the module's docstring)."""
    config = config or Config()
    contexts = accepted_contexts(config)
    storage = sorted((c for c in contexts if c.service == "Storage"), key=lambda c: uid_name(c.abstract_syntax))
    out: list[str] = []
    add = out.append
    add(f"# DICOM Conformance Statement — {PRODUCT} {_version()}")
    add("")
    add(f"Generated from the code by `{GENERATED_BY}` (gateway/conformance/): edit the code or the "
        "generator, never this file. Layout after PS3.2 (2024). Values that are configurable are given "
        "with the default of the config schema (gateway/config/), as \"configurable, default X\".")
    add("")
    _overview(out, contexts, storage)
    _contents(out)
    _introduction(out)
    _networking(out, config, contexts, storage)
    _media(out, config)
    _charsets(out)
    _security(out, config)
    return "\n".join(out).rstrip("\n") + "\n"

