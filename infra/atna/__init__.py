"""IHE ATNA: the audit trail as DICOM PS3.15 A.5 audit messages, sent over syslog."""
