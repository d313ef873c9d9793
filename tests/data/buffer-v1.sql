-- Buffer index written by dicom-gateway at 20cb9d5; see make_buffer_v1.py
BEGIN TRANSACTION;
CREATE TABLE commitments (
    txn_uid TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    sent_at REAL NOT NULL,
    deadline REAL NOT NULL
);
INSERT INTO "commitments" VALUES('1.2.826.0.1.3680043.2.1125.9.4.1','a','pending',1780000000.0,1780000600.0);
CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    sop_uid TEXT NOT NULL UNIQUE,
    sop_class TEXT NOT NULL,
    series_fk INTEGER NOT NULL REFERENCES series(id),
    instance_number TEXT NOT NULL DEFAULT '',
    transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
INSERT INTO "instances" VALUES(1,'1.2.826.0.1.3680043.2.1125.9.3.1','1.2.840.10008.5.1.4.1.1.2',1,'1','1.2.840.10008.1.2.1','objects/20261129/3a4ffb4f254344d9b1bb09b2d2c88d3a.dcm',8974,'MODALITY',1780000000.0,1);
INSERT INTO "instances" VALUES(2,'1.2.826.0.1.3680043.2.1125.9.3.2','1.2.840.10008.5.1.4.1.1.2',2,'2','1.2.840.10008.1.2.1','objects/20261129/125996a8a8934c3a8ab73f7fa09c12aa.dcm',8974,'MODALITY',1780000000.0,1);
INSERT INTO "instances" VALUES(3,'1.2.826.0.1.3680043.2.1125.9.3.3','1.2.840.10008.5.1.4.1.1.2',3,'3','1.2.840.10008.1.2.1','objects/20261129/b86834c3f7804c21bd6cd54ba1d04f93.dcm',8974,'MODALITY',1780000000.0,1);
INSERT INTO "instances" VALUES(4,'1.2.826.0.1.3680043.2.1125.9.3.4','1.2.840.10008.5.1.4.1.1.2',4,'4','1.2.840.10008.1.2.1','objects/20261129/025683a043ed46c18887de5f5c7835fe.dcm',8974,'MODALITY',1780000000.0,1);
INSERT INTO "instances" VALUES(5,'1.2.826.0.1.3680043.2.1125.9.3.5','1.2.840.10008.5.1.4.1.1.2',5,'5','1.2.840.10008.1.2.1','objects/20261129/2057bb5cafeb429a9711b08985a7276a.dcm',8974,'MODALITY',1780000000.0,1);
INSERT INTO "instances" VALUES(6,'1.2.826.0.1.3680043.2.1125.9.3.6','1.2.840.10008.5.1.4.1.1.2',6,'6','1.2.840.10008.1.2.1','objects/20261129/97c32e2928fb4838ad664ce760379356.dcm',8974,'MODALITY',1780000000.0,1);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    instance_fk INTEGER REFERENCES instances(id),
    payload TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    commit_txn TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
INSERT INTO "jobs" VALUES(1,'forward','a',1,NULL,'done',1,0.0,'',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(2,'forward','b',1,NULL,'done',1,0.0,'',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(3,'forward','a',2,NULL,'done',1,0.0,'',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(4,'forward','b',2,NULL,'queued',1,1780003600.0,'no association with b',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(5,'forward','a',3,NULL,'committing',1,0.0,'','1.2.826.0.1.3680043.2.1125.9.4.1',1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(6,'forward','a',4,NULL,'dead',1,0.0,'status 0xA900',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(7,'forward','a',5,NULL,'in_flight',1,0.0,'',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(8,'print','film',NULL,'{"print_job": "1.2.826.0.1.3680043.2.1125.9.5.1", "film": 1, "folder": "spool/1.2.826.0.1.3680043.2.1125.9.5.1/film-1"}','done',1,0.0,'',NULL,1780000000.0,1780000000.0);
INSERT INTO "jobs" VALUES(9,'print','film',NULL,'{"print_job": "1.2.826.0.1.3680043.2.1125.9.5.1", "film": 2, "folder": "spool/1.2.826.0.1.3680043.2.1125.9.5.1/film-2"}','queued',0,0.0,'',NULL,1780000000.0,1780000000.0);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    UNIQUE (patient_id, issuer)
);
INSERT INTO "patients" VALUES(1,'PID-1','','Test^Patient','19700101','O');
INSERT INTO "patients" VALUES(2,'PID-2','','Test^Patient','19700101','O');
INSERT INTO "patients" VALUES(3,'PID-3','','Test^Patient','19700101','O');
INSERT INTO "patients" VALUES(4,'PID-4','','Test^Patient','19700101','O');
INSERT INTO "patients" VALUES(5,'PID-5','','Test^Patient','19700101','O');
INSERT INTO "patients" VALUES(6,'PID-6','','Test^Patient','19700101','O');
CREATE TABLE print_films (
    job_id INTEGER PRIMARY KEY,
    print_job_uid TEXT NOT NULL REFERENCES print_jobs(uid),
    film INTEGER NOT NULL,
    folder TEXT NOT NULL,
    phase TEXT NOT NULL,
    mark TEXT NOT NULL DEFAULT '',
    preview TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL
);
INSERT INTO "print_films" VALUES(8,'1.2.826.0.1.3680043.2.1125.9.5.1',1,'spool/1.2.826.0.1.3680043.2.1125.9.5.1/film-1','printed','{"films_left": 10, "copies": 1, "done": 0}','previews/1.2.826.0.1.3680043.2.1125.9.5.1-1.png',1780000000.0);
INSERT INTO "print_films" VALUES(9,'1.2.826.0.1.3680043.2.1125.9.5.1',2,'spool/1.2.826.0.1.3680043.2.1125.9.5.1/film-2','queued','','',1780000000.0);
CREATE TABLE print_jobs (
    uid TEXT PRIMARY KEY,
    printer TEXT NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT 'MED',
    films INTEGER NOT NULL,
    created REAL NOT NULL
);
INSERT INTO "print_jobs" VALUES('1.2.826.0.1.3680043.2.1125.9.5.1','film','PRINTSCU','MED',2,1780000000.0);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    series_uid TEXT NOT NULL UNIQUE,
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    modality TEXT NOT NULL DEFAULT '',
    series_number TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT ''
);
INSERT INTO "series" VALUES(1,'1.2.826.0.1.3680043.2.1125.9.2.1',1,'CT','1','','');
INSERT INTO "series" VALUES(2,'1.2.826.0.1.3680043.2.1125.9.2.2',2,'CT','1','','');
INSERT INTO "series" VALUES(3,'1.2.826.0.1.3680043.2.1125.9.2.3',3,'CT','1','','');
INSERT INTO "series" VALUES(4,'1.2.826.0.1.3680043.2.1125.9.2.4',4,'CT','1','','');
INSERT INTO "series" VALUES(5,'1.2.826.0.1.3680043.2.1125.9.2.5',5,'CT','1','','');
INSERT INTO "series" VALUES(6,'1.2.826.0.1.3680043.2.1125.9.2.6',6,'CT','1','','');
CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    patient_fk INTEGER NOT NULL REFERENCES patients(id),
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    referring TEXT NOT NULL DEFAULT '',
    charset TEXT NOT NULL DEFAULT '',
    first_received REAL NOT NULL
);
INSERT INTO "studies" VALUES(1,'1.2.826.0.1.3680043.2.1125.9.1.1',1,'20261123','120000','ACC1','1','','','',1780000000.0);
INSERT INTO "studies" VALUES(2,'1.2.826.0.1.3680043.2.1125.9.1.2',2,'20261123','120000','ACC1','1','','','',1780000000.0);
INSERT INTO "studies" VALUES(3,'1.2.826.0.1.3680043.2.1125.9.1.3',3,'20261123','120000','ACC1','1','','','',1780000000.0);
INSERT INTO "studies" VALUES(4,'1.2.826.0.1.3680043.2.1125.9.1.4',4,'20261123','120000','ACC1','1','','','',1780000000.0);
INSERT INTO "studies" VALUES(5,'1.2.826.0.1.3680043.2.1125.9.1.5',5,'20261123','120000','ACC1','1','','','',1780000000.0);
INSERT INTO "studies" VALUES(6,'1.2.826.0.1.3680043.2.1125.9.1.6',6,'20261123','120000','ACC1','1','','','',1780000000.0);
CREATE INDEX instances_series ON instances(series_fk);
CREATE INDEX jobs_pick ON jobs(kind, target, state, next_attempt, id);
CREATE INDEX jobs_instance ON jobs(instance_fk);
CREATE INDEX jobs_txn ON jobs(commit_txn);
CREATE UNIQUE INDEX jobs_one_queued
    ON jobs(kind, target, instance_fk) WHERE state = 'queued' AND instance_fk IS NOT NULL;
CREATE INDEX instances_received ON instances(received_at);
CREATE INDEX jobs_done ON jobs(instance_fk) WHERE state = 'done';
CREATE INDEX print_films_job ON print_films(print_job_uid);
COMMIT;
