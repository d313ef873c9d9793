"""The Print Management object model of one association (PS3.4 Annex H), in plain Python.

    Film Session 1 ── n Film Box 1 ── n Image Box (grayscale or colour, one per layout position)
                                  └── n Annotation Box (when an Annotation Display Format ID is set)
    Presentation LUT (referenced by a Film Box or an Image Box; its content is copied on reference)

Everything lives in memory for the association's lifetime and is dropped on release or abort
(`clear`).  What survives is what an N-ACTION hands to the spooler: `film_description` turns a
Film Box into a JSON-able description plus the pixel arrays, which the spooler writes durably.

No pynetdicom here: the SCP (gateway/dicom/print_scp.py) maps DIMSE messages onto these methods,
and PrintFailure / Checked carry the DIMSE status back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gateway.print import validate as v
from gateway.print.profile import PrintSection
from gateway.print.validate import Checked, PrintFailure

FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
COLOR_IMAGE_BOX = "1.2.840.10008.5.1.1.4.1"
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
PRINTER_CONFIGURATION = "1.2.840.10008.5.1.1.16.376"
PRINTER_CONFIGURATION_INSTANCE = "1.2.840.10008.5.1.1.17.376"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
GRAYSCALE_META = "1.2.840.10008.5.1.1.9"
COLOR_META = "1.2.840.10008.5.1.1.18"

NO_SUCH_INSTANCE, PROCESSING_FAILURE, DUPLICATE_INSTANCE = 0x0112, 0x0110, 0x0111
NO_FILM_BOX, EMPTY_SESSION, EMPTY_FILM_BOX = 0xC600, 0xB602, 0xB603


@dataclass
class ImageBox:
    uid: str
    position: int
    sop_class: str
    values: dict = field(default_factory=dict)

    @property
    def filled(self) -> bool:
        return self.values.get("pixels") is not None


@dataclass
class AnnotationBox:
    uid: str
    position: int
    text: str = ""


@dataclass
class FilmBox:
    uid: str
    values: dict
    image_boxes: list[ImageBox]
    annotations: list[AnnotationBox]
    plut: dict | None = None
    printed: bool = False

    @property
    def colour(self) -> bool:
        return bool(self.image_boxes) and self.image_boxes[0].sop_class == COLOR_IMAGE_BOX


@dataclass
class FilmSession:
    uid: str
    values: dict
    film_boxes: list[FilmBox] = field(default_factory=list)


def annotation_count(fmt: str | None) -> int:
    if not fmt:
        return 0
    return int(fmt) if fmt.isdigit() and 0 < int(fmt) <= 8 else 1


class PrintSession:
    """One association's print objects."""

    def __init__(self, profile: PrintSection, calling_ae: str = ""):
        self.profile = profile
        self.calling_ae = calling_ae
        self.session: FilmSession | None = None
        self.pluts: dict[str, dict] = {}
        self._image_boxes: dict[str, tuple[FilmBox, ImageBox]] = {}
        self._annotations: dict[str, tuple[FilmBox, AnnotationBox]] = {}

    # -- Basic Film Session ---------------------------------------------------------------------
    def create_film_session(self, ds: Dataset, uid: str | None = None) -> tuple[str, Checked]:
        if self.session is not None:
            raise PrintFailure(PROCESSING_FAILURE, "a Film Session already exists on this association")
        checked = v.check_film_session(ds, self.profile, creating=True)
        uid = uid or generate_uid()
        self.session = FilmSession(uid, checked.values)
        return uid, checked

    def _session(self, uid: str) -> FilmSession:
        if self.session is None or self.session.uid != uid:
            raise PrintFailure(NO_SUCH_INSTANCE, f"no Film Session {uid}")
        return self.session

    def set_film_session(self, uid: str, ds: Dataset) -> Checked:
        session = self._session(uid)
        checked = v.check_film_session(ds, self.profile, creating=False)
        session.values.update(checked.values)
        return checked

    def delete_film_session(self, uid: str) -> None:
        """Deletes the session's Film Boxes, Image and Annotation Boxes; Presentation LUTs are
        association-level objects and stay until deleted themselves."""
        self._session(uid)
        self.session = None
        self._image_boxes.clear()
        self._annotations.clear()

    # -- Basic Film Box ----------------------------------------------------------------------------
    def _plut(self, uid: str | None) -> dict | None:
        if uid is None:
            return None
        if uid not in self.pluts:
            raise PrintFailure(v.INVALID_VALUE, f"no Presentation LUT {uid} on this association",
                               [0x20500500])
        return self.pluts[uid]

    def create_film_box(self, ds: Dataset, colour: bool, annotations_allowed: bool,
                        uid: str | None = None) -> tuple[FilmBox, Checked]:
        if self.session is None:
            raise PrintFailure(PROCESSING_FAILURE, "no Film Session: create one first")
        checked = v.check_film_box(ds, self.profile, creating=True)
        values = checked.values
        if values["film_session_uid"] != self.session.uid:
            raise PrintFailure(v.INVALID_VALUE, "Referenced Film Session is not this association's",
                               [0x20100500])
        plut = self._plut(values.get("plut_uid"))
        uid = uid or generate_uid()
        cls = COLOR_IMAGE_BOX if colour else GRAYSCALE_IMAGE_BOX
        boxes = [ImageBox(generate_uid(), i + 1, cls) for i in range(v.box_count(values["display_format"]))]
        n_ann = annotation_count(values.get("annotation_format")) if annotations_allowed else 0
        notes = [AnnotationBox(generate_uid(), i + 1) for i in range(n_ann)]
        film = FilmBox(uid, values, boxes, notes, plut)
        self.session.film_boxes.append(film)
        for b in boxes:
            self._image_boxes[b.uid] = (film, b)
        for a in notes:
            self._annotations[a.uid] = (film, a)
        return film, checked

    def film_box(self, uid: str) -> FilmBox:
        if self.session is not None:
            for film in self.session.film_boxes:
                if film.uid == uid:
                    return film
        raise PrintFailure(NO_SUCH_INSTANCE, f"no Film Box {uid}")

    def set_film_box(self, uid: str, ds: Dataset) -> Checked:
        film = self.film_box(uid)
        checked = v.check_film_box(ds, self.profile, creating=False, current=film.values)
        if "plut_uid" in checked.values:
            film.plut = self._plut(checked.values["plut_uid"])
        film.values.update(checked.values)
        return checked

    def delete_film_box(self, uid: str) -> None:
        film = self.film_box(uid)
        self.session.film_boxes.remove(film)
        for b in film.image_boxes:
            self._image_boxes.pop(b.uid, None)
        for a in film.annotations:
            self._annotations.pop(a.uid, None)

    # -- Image Box, Annotation Box -------------------------------------------------------------------
    def set_image_box(self, uid: str, ds: Dataset, sop_class: str | None = None) -> Checked:
        if uid not in self._image_boxes:
            raise PrintFailure(NO_SUCH_INSTANCE, f"no Image Box {uid}")
        film, box = self._image_boxes[uid]
        if sop_class is not None and sop_class != box.sop_class:
            raise PrintFailure(0x0119, "SOP class does not match the Image Box instance")
        checked = v.check_image_box(ds, self.profile, box.sop_class == COLOR_IMAGE_BOX,
                                    film.values, box.position)
        values = dict(checked.values)
        if "plut_uid" in values:
            values["plut"] = self._plut(values.pop("plut_uid"))
        box.values.update(values)
        return checked

    def set_annotation(self, uid: str, ds: Dataset) -> Checked:
        if uid not in self._annotations:
            raise PrintFailure(NO_SUCH_INSTANCE, f"no Annotation Box {uid}")
        _film, note = self._annotations[uid]
        checked = v.check_annotation(ds, note.position)
        if "text" in checked.values:
            note.text = checked.values["text"]
        return checked

    # -- Presentation LUT -------------------------------------------------------------------------------
    def create_presentation_lut(self, ds: Dataset, uid: str | None = None) -> tuple[str, Checked]:
        checked = v.check_presentation_lut(ds)
        uid = uid or generate_uid()
        if uid in self.pluts:
            raise PrintFailure(DUPLICATE_INSTANCE, f"Presentation LUT {uid} exists")
        self.pluts[uid] = checked.values
        return uid, checked

    def delete_presentation_lut(self, uid: str) -> None:
        if uid not in self.pluts:
            raise PrintFailure(NO_SUCH_INSTANCE, f"no Presentation LUT {uid}")
        del self.pluts[uid]

    # -- printing ---------------------------------------------------------------------------------------
    def films_to_print(self, sop_class: str, uid: str) -> tuple[list[FilmBox], int]:
        """(film boxes, warning status) an N-ACTION on a Film Session or Film Box prints."""
        if sop_class == FILM_SESSION:
            films = list(self._session(uid).film_boxes)
            if not films:
                raise PrintFailure(NO_FILM_BOX, "the Film Session has no Film Box")
            empty = not any(b.filled for f in films for b in f.image_boxes)
            return films, EMPTY_SESSION if empty else 0
        film = self.film_box(uid)
        return [film], 0 if any(b.filled for b in film.image_boxes) else EMPTY_FILM_BOX

    def film_description(self, film: FilmBox) -> tuple[dict, dict[str, np.ndarray]]:
        """A Film Box as the spooler stores it: JSON-able description and named pixel arrays."""
        session = self.session.values if self.session else {}
        fv = film.values
        arrays: dict[str, np.ndarray] = {}

        def plut_desc(plut: dict | None, name: str) -> dict | None:
            if plut is None:
                return None
            if plut.get("lut") is not None:
                arrays[name] = plut["lut"]
                return {"shape": None, "lut": name, "lut_bits": plut["lut_bits"]}
            return {"shape": plut["shape"], "lut": None, "lut_bits": None}

        images = []
        for b in film.image_boxes:
            if not b.filled:
                continue
            name = f"image-{b.position}"
            arrays[name] = b.values["pixels"]
            images.append({
                "position": b.position, "pixels": name, "bits_stored": b.values["bits_stored"],
                "photometric": b.values.get("photometric", ""),
                "polarity": b.values.get("polarity", "NORMAL"),
                "magnification": b.values.get("magnification"),
                "requested_size_mm": b.values.get("requested_size_mm"),
                "plut": plut_desc(b.values.get("plut"), f"plut-{b.position}"),
                "labels": b.values.get("labels", {}),
            })
        desc = {
            "film_box_uid": film.uid,
            "film_session_uid": self.session.uid if self.session else "",
            "calling_ae": self.calling_ae,
            "copies": session.get("copies", 1),
            "priority": session.get("priority", "MED"),
            "medium": session.get("medium", self.profile.default_medium_type),
            "destination": session.get("destination", self.profile.default_destination),
            "label": session.get("label", ""),
            "film_size": fv["film_size"], "orientation": fv["orientation"],
            "display_format": fv["display_format"], "magnification": fv["magnification"],
            "smoothing": fv.get("smoothing", ""),
            "border_density": fv["border_density"], "empty_density": fv["empty_density"],
            "min_density": fv["min_density"], "max_density": fv["max_density"],
            "trim": fv["trim"], "illumination": fv["illumination"], "ambient": fv["ambient"],
            "colour": film.colour,
            "plut": plut_desc(film.plut, "plut-film"),
            "images": images,
            "annotations": [{"position": a.position, "text": a.text} for a in film.annotations if a.text],
        }
        return desc, arrays

    def clear(self) -> None:
        self.session = None
        self.pluts.clear()
        self._image_boxes.clear()
        self._annotations.clear()
