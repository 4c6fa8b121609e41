-- A call's subject (the loan note or process it is about) is no longer indexed as the call is
-- recorded: an index entry per call dirtied one random index page per call, and every dirty
-- page costs a whole WAL frame at commit. The writer now indexes the subjects of the inbox's
-- tail some hundreds of calls at a time, sorted, in the same transaction as a batch of calls;
-- histories read this table and scan the short tail beyond `inbox_subjects_upto`.
CREATE TABLE inbox_subjects (
    subject TEXT NOT NULL,
    id      INTEGER NOT NULL,
    PRIMARY KEY (subject, id)
) WITHOUT ROWID;

-- How far `inbox_subjects` reaches: inbox ids up to and including this one are in it.
CREATE TABLE inbox_subjects_upto (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    id   INTEGER NOT NULL
);

INSERT INTO inbox_subjects (subject, id)
    SELECT subject, id FROM inbox WHERE subject IS NOT NULL ORDER BY subject, id;
INSERT INTO inbox_subjects_upto (only, id) SELECT 1, coalesce(max(id), 0) FROM inbox;
DROP INDEX inbox_by_subject;
