"""Section 5 of the statement (PS3.2 Media interchange): the FSC and FSR, and the application
profiles of media/profiles.PROFILES with the media of media/export.PROFILE_FOR."""

from __future__ import annotations

from gateway.config import Config
from gateway.media.export import PROFILE_FOR
from gateway.media.profiles import PROFILES

from .tables import _table, _ts_names, uid_name

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def _media(out: list[str], config: Config) -> None:
    by_profile: dict[str, list[str]] = {}
    for kind, name in PROFILE_FOR.items():
        by_profile.setdefault(name, []).append(kind.value)
    out += ["## 5 Media interchange", "",
            "### 5.1 Implementation model", "",
            "Export (FSC): studies from the buffer are written, as jobs of the durable queue, to a CD, DVD or "
            "USB stick (`dicom-gateway export`, or the export rules `[[media.export_rules]]` when a blank "
            "medium is inserted), with a DICOMDIR and IHE PDI pages; a medium is good only after it was read "
            "back and compared. Import (FSR): `dicom-gateway import PATH` follows the medium's DICOMDIR (or "
            "reads every file when there is none or it is broken) and takes each instance into the buffer as "
            "a C-STORE would arrive (same storage classes, duplicate policy, routes).", "",
            "### 5.2 AE specifications", "",
            f"One AE (title `{config.ae.title}`), FSC and FSR of the profiles below; the profile follows the "
            "medium. SOP classes on the media: Media Storage Directory Storage "
            f"{MEDIA_STORAGE_DIRECTORY} and every storage SOP class of Table 4.2-2 held in the buffer.", ""]
    rows = []
    for name, prof in PROFILES.items():
        rows.append((name, ", ".join(by_profile.get(name, [])) or "—",
                     _ts_names(sorted(prof.allowed, key=uid_name)), "FSC, FSR"))
    out += _table(["Application profile", "Medium", "Transfer syntaxes written", "Roles"], rows)
    out += ["An instance whose transfer syntax the profile does not allow is converted to Explicit VR Little "
            "Endian (decompressed with pydicom and pylibjpeg; Big Endian swapped; the SOP Instance UID "
            "kept, Lossy Image Compression kept); what cannot be decoded is left out with the reason in "
            "the job's report. The FSR reads any transfer syntax (instances are stored as they are on the "
            "medium). No augmented or private profiles.", ""]
