"""Index rows written straight into a buffer's SQLite index, for tests that need many studies
quickly (C-FIND batches and cancels): each study gets one series holding one instance, because a
study matches a query only while it holds an instance (gateway/buffer/query.py)."""

from __future__ import annotations

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def seed_studies(index, study_uids: list[str], patient_id: str = "P", study_dates: list[str] | None = None) -> None:
    """One patient (`patient_id`, name X) holding a study for each UID (dated by `study_dates`)."""
    dates = study_dates or [""] * len(study_uids)
    with index.tx() as cur:
        cur.execute("INSERT INTO patients(patient_id, patient_name, name_folded) VALUES (?, 'X', 'x')",
                    (patient_id,))
        patient = cur.lastrowid
        for n, (uid, date) in enumerate(zip(study_uids, dates)):
            cur.execute("INSERT INTO studies(study_uid, patient_fk, study_date, first_received) VALUES (?, ?, ?, 0)",
                        (uid, patient, date))
            study = cur.lastrowid
            cur.execute("INSERT INTO series(series_uid, study_fk) VALUES (?, ?)", (f"{uid}.1", study))
            cur.execute("INSERT INTO instances(sop_uid, sop_class, series_fk, transfer_syntax, path, size,"
                        " received_at) VALUES (?, ?, ?, ?, ?, 1, 0)",
                        (f"{uid}.1.1", CT_STORAGE, cur.lastrowid, EXPLICIT_LE, f"objects/seed/{n}.dcm"))
