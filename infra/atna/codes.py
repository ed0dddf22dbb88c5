"""The coded values of DICOM PS3.15 A.5 audit messages (PS3.16 CID 400-series, DCM and
RFC-3881 code systems) that our messages use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """A coded value: code, coding scheme, code meaning."""

    code: str
    system: str
    meaning: str


def dcm(code: str, meaning: str) -> Code:
    return Code(code, "DCM", meaning)


# CID 400 Audit Event ID
INSTANCES_ACCESSED = dcm("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = dcm("110104", "DICOM Instances Transferred")
QUERY = dcm("110112", "Query")
AUDIT_LOG_USED = dcm("110101", "Audit Log Used")
PROCEDURE_RECORD = dcm("110111", "Procedure Record")
SECURITY_ALERT = dcm("110113", "Security Alert")
USER_AUTHENTICATION = dcm("110114", "User Authentication")

# CID 403 Security Alert Type
NODE_AUTHENTICATION = dcm("110126", "Node Authentication")
NETWORK_CONFIGURATION = dcm("110128", "Network Configuration")
SECURITY_CONFIGURATION = dcm("110129", "Security Configuration")
USE_OF_RESTRICTED_FUNCTION = dcm("110132", "Use of Restricted Function")
USER_SECURITY_ATTRIBUTES_CHANGED = dcm("110137", "User security Attributes Changed")

# CID 404 User Authentication Event Type
LOGIN = dcm("110122", "Login")
LOGOUT = dcm("110123", "Logout")

# CID 402 Audit Active Participant Role ID
DESTINATION = dcm("110152", "Destination Role ID")
SOURCE = dcm("110153", "Source Role ID")

# CID 401 / RFC 3881 Participant Object ID Type
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
USER_IDENTIFIER = Code("11", "RFC-3881", "User Identifier")
URI = Code("12", "RFC-3881", "URI")
STUDY_INSTANCE_UID = dcm("110180", "Study Instance UID")
SOP_CLASS_UID = dcm("110181", "SOP Class UID")
NODE_ID = dcm("110182", "Node ID")

# The query a C-FIND and a QIDO-RS search run (PS3.4 C.6.2: Study Root Q/R FIND).
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
# Worklist reads (MWL C-FIND, GET /api/worklist): the Modality Worklist FIND SOP class.
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
