"""The option columns of PS3.15 Table E.1-1 that we implement, as data.

Derived from DICOM PS3.15 2024e, Annex E, Table E.1-1 "Application Level Confidentiality
Profile Attributes" (the columns "Rtn. Long. Modif. Dates Opt.", "Rtn. Pat. Chars. Opt.",
"Rtn. Dev. Id. Opt." and "Clean Desc. Opt."), as published in machine-readable form by the
innolitics/dicom-standard project (standard/confidentiality_profile_attributes.json). The
basic profile column comes from dicom-anonymizer's copy of the 2026c table
(profile.py); the library carries no option columns, hence this file. Attributes added
to the table after 2024e have no option column here, so the basic profile applies to them:
the conservative side.

Each entry: tag -> the option's action (K keep, C clean), the attribute's name as a comment.
"""

from __future__ import annotations

# Retain Longitudinal Temporal Information with Modified Dates Option (PS3.15 E.3).
RETAIN_LONGITUDINAL_MODIFIED_DATES: dict[int, str] = {
    0x00080012: "C",  # Instance Creation Date
    0x00080013: "C",  # Instance Creation Time
    0x00080015: "C",  # Instance Coercion DateTime
    0x00080020: "C",  # Study Date
    0x00080021: "C",  # Series Date
    0x00080022: "C",  # Acquisition Date
    0x00080023: "C",  # Content Date
    0x00080024: "C",  # Overlay Date
    0x00080025: "C",  # Curve Date
    0x0008002A: "C",  # Acquisition DateTime
    0x00080030: "C",  # Study Time
    0x00080031: "C",  # Series Time
    0x00080032: "C",  # Acquisition Time
    0x00080033: "C",  # Content Time
    0x00080034: "C",  # Overlay Time
    0x00080035: "C",  # Curve Time
    0x00080106: "C",  # Context Group Version
    0x00080107: "C",  # Context Group Local Version
    0x00080201: "C",  # Timezone Offset From UTC
    0x001021D0: "C",  # Last Menstrual Date
    0x00120086: "C",  # Ethics Committee Approval Effectiveness Start Date
    0x00120087: "C",  # Ethics Committee Approval Effectiveness End Date
    0x0014407C: "C",  # Calibration Time
    0x0014407E: "C",  # Calibration Date
    0x0016008D: "C",  # GPS Date Stamp
    0x00180027: "C",  # Intervention Drug Stop Time
    0x00180035: "C",  # Intervention Drug Start Time
    0x00181012: "C",  # Date of Secondary Capture
    0x00181014: "C",  # Time of Secondary Capture
    0x00181042: "C",  # Contrast/Bolus Start Time
    0x00181043: "C",  # Contrast/Bolus Stop Time
    0x00181072: "C",  # Radiopharmaceutical Start Time
    0x00181073: "C",  # Radiopharmaceutical Stop Time
    0x00181078: "C",  # Radiopharmaceutical Start DateTime
    0x00181079: "C",  # Radiopharmaceutical Stop DateTime
    0x00181200: "C",  # Date of Last Calibration
    0x00181201: "C",  # Time of Last Calibration
    0x00181202: "C",  # DateTime of Last Calibration
    0x00181203: "C",  # Calibration DateTime
    0x00181204: "C",  # Date of Manufacture
    0x00181205: "C",  # Date of Installation
    0x0018700C: "C",  # Date of Last Detector Calibration
    0x0018700E: "C",  # Time of Last Detector Calibration
    0x00189074: "C",  # Frame Acquisition DateTime
    0x00189151: "C",  # Frame Reference DateTime
    0x00189369: "C",  # Source Start DateTime
    0x0018936A: "C",  # Source End DateTime
    0x00189516: "C",  # Start Acquisition DateTime
    0x00189517: "C",  # End Acquisition DateTime
    0x00189623: "C",  # Functional Sync Pulse
    0x00189701: "C",  # Decay Correction DateTime
    0x00189804: "C",  # Exclusion Start DateTime
    0x00189919: "C",  # Instruction Performed DateTime
    0x0018A002: "C",  # Contribution DateTime
    0x00203403: "C",  # Modified Image Date
    0x00203405: "C",  # Modified Image Time
    0x00320032: "C",  # Study Verified Date
    0x00320033: "C",  # Study Verified Time
    0x00320034: "C",  # Study Read Date
    0x00320035: "C",  # Study Read Time
    0x00321000: "C",  # Scheduled Study Start Date
    0x00321001: "C",  # Scheduled Study Start Time
    0x00321010: "C",  # Scheduled Study Stop Date
    0x00321011: "C",  # Scheduled Study Stop Time
    0x00321040: "C",  # Study Arrival Date
    0x00321041: "C",  # Study Arrival Time
    0x00321050: "C",  # Study Completion Date
    0x00321051: "C",  # Study Completion Time
    0x00340007: "C",  # Frame Origin Timestamp
    0x0038001A: "C",  # Scheduled Admission Date
    0x0038001B: "C",  # Scheduled Admission Time
    0x0038001C: "C",  # Scheduled Discharge Date
    0x0038001D: "C",  # Scheduled Discharge Time
    0x00380020: "C",  # Admitting Date
    0x00380021: "C",  # Admitting Time
    0x00380030: "C",  # Discharge Date
    0x00380032: "C",  # Discharge Time
    0x003A0314: "C",  # Impedance Measurement DateTime
    0x00400002: "C",  # Scheduled Procedure Step Start Date
    0x00400003: "C",  # Scheduled Procedure Step Start Time
    0x00400004: "C",  # Scheduled Procedure Step End Date
    0x00400005: "C",  # Scheduled Procedure Step End Time
    0x00400244: "C",  # Performed Procedure Step Start Date
    0x00400245: "C",  # Performed Procedure Step Start Time
    0x00400250: "C",  # Performed Procedure Step End Date
    0x00400251: "C",  # Performed Procedure Step End Time
    0x00402004: "C",  # Issue Date of Imaging Service Request
    0x00402005: "C",  # Issue Time of Imaging Service Request
    0x00404005: "C",  # Scheduled Procedure Step Start DateTime
    0x00404008: "C",  # Scheduled Procedure Step Expiration DateTime
    0x00404010: "C",  # Scheduled Procedure Step Modification DateTime
    0x00404011: "C",  # Expected Completion DateTime
    0x00404050: "C",  # Performed Procedure Step Start DateTime
    0x00404051: "C",  # Performed Procedure Step End DateTime
    0x00404052: "C",  # Procedure Step Cancellation DateTime
    0x0040A023: "C",  # Findings Group Recording Date (Trial)
    0x0040A024: "C",  # Findings Group Recording Time (Trial)
    0x0040A030: "C",  # Verification DateTime
    0x0040A032: "C",  # Observation DateTime
    0x0040A033: "C",  # Observation Start DateTime
    0x0040A082: "C",  # Participation DateTime
    0x0040A110: "C",  # Date of Document or Verbal Transaction (Trial)
    0x0040A112: "C",  # Time of Document Creation or Verbal Transaction (Trial)
    0x0040A120: "C",  # DateTime
    0x0040A121: "C",  # Date
    0x0040A122: "C",  # Time
    0x0040A13A: "C",  # Referenced DateTime
    0x0040A192: "C",  # Observation Date (Trial)
    0x0040A193: "C",  # Observation Time (Trial)
    0x0040DB06: "C",  # Template Version
    0x0040DB07: "C",  # Template Local Version
    0x0040E004: "C",  # HL7 Document Effective Time
    0x00440004: "C",  # Approval Status DateTime
    0x0044000B: "C",  # Product Expiration DateTime
    0x00440010: "C",  # Substance Administration DateTime
    0x00440104: "C",  # Assertion DateTime
    0x00440105: "C",  # Assertion Expiration DateTime
    0x00686226: "C",  # Effective DateTime
    0x00686270: "C",  # Information Issue DateTime
    0x00700082: "C",  # Presentation Creation Date
    0x00700083: "C",  # Presentation Creation Time
    0x0072000A: "C",  # Hanging Protocol Creation DateTime
    0x00720061: "C",  # Selector DA Value
    0x00720063: "C",  # Selector DT Value
    0x0072006B: "C",  # Selector TM Value
    0x01000420: "C",  # SOP Authorization DateTime
    0x04000105: "C",  # Digital Signature DateTime
    0x04000310: "C",  # Certified Timestamp
    0x04000562: "C",  # Attribute Modification DateTime
    0x21000040: "C",  # Creation Date
    0x21000050: "C",  # Creation Time
    0x30060008: "C",  # Structure Set Date
    0x30060009: "C",  # Structure Set Time
    0x3006002D: "C",  # ROI DateTime
    0x3006002E: "C",  # ROI Observation DateTime
    0x30080024: "C",  # Treatment Control Point Date
    0x30080025: "C",  # Treatment Control Point Time
    0x30080054: "C",  # First Treatment Date
    0x30080056: "C",  # Most Recent Treatment Date
    0x30080162: "C",  # Safe Position Exit Date
    0x30080164: "C",  # Safe Position Exit Time
    0x30080166: "C",  # Safe Position Return Date
    0x30080168: "C",  # Safe Position Return Time
    0x30080250: "C",  # Treatment Date
    0x30080251: "C",  # Treatment Time
    0x300A0006: "C",  # RT Plan Date
    0x300A0007: "C",  # RT Plan Time
    0x300A022C: "C",  # Source Strength Reference Date
    0x300A022E: "C",  # Source Strength Reference Time
    0x300A0736: "C",  # Treatment Tolerance Violation DateTime
    0x300A073A: "C",  # Recorded RT Control Point DateTime
    0x300A0741: "C",  # Interlock DateTime
    0x300A0760: "C",  # Override DateTime
    0x300C0127: "C",  # Beam Hold Transition DateTime
    0x300E0004: "C",  # Review Date
    0x300E0005: "C",  # Review Time
    0x3010004C: "C",  # Intended Phase Start Date
    0x3010004D: "C",  # Intended Phase End Date
    0x30100085: "C",  # Intended Fraction Start Time
    0x40080100: "C",  # Interpretation Recorded Date
    0x40080101: "C",  # Interpretation Recorded Time
    0x40080108: "C",  # Interpretation Transcription Date
    0x40080109: "C",  # Interpretation Transcription Time
    0x40080112: "C",  # Interpretation Approval Date
    0x40080113: "C",  # Interpretation Approval Time
}

# Retain Patient Characteristics Option (PS3.15 E.3).
RETAIN_PATIENT_CHARACTERISTICS: dict[int, str] = {
    0x00100040: "K",  # Patient's Sex
    0x00101010: "K",  # Patient's Age
    0x00101020: "K",  # Patient's Size
    0x00101030: "K",  # Patient's Weight
    0x00102110: "C",  # Allergies
    0x00102160: "K",  # Ethnic Group
    0x001021A0: "K",  # Smoking Status
    0x001021C0: "K",  # Pregnancy Status
    0x00102203: "K",  # Patient's Sex Neutered
    0x00380050: "C",  # Special Needs
    0x00380500: "C",  # Patient State
    0x00400012: "C",  # Pre-Medication
    0x0072005F: "K",  # Selector AS Value
}

# Retain Device Identity Option (PS3.15 E.3).
RETAIN_DEVICE_IDENTITY: dict[int, str] = {
    0x00080054: "C",  # Retrieve AE Title
    0x00080055: "C",  # Station AE Title
    0x00081000: "C",  # Network ID
    0x00081010: "K",  # Station Name
    0x0014407C: "K",  # Calibration Time
    0x0014407E: "K",  # Calibration Date
    0x0016004E: "K",  # Lens Specification
    0x0016004F: "K",  # Lens Make
    0x00160050: "K",  # Lens Model
    0x00160051: "K",  # Lens Serial Number
    0x00181000: "K",  # Device Serial Number
    0x00181002: "K",  # Device UID
    0x00181004: "K",  # Plate ID
    0x00181005: "K",  # Generator ID
    0x00181007: "K",  # Cassette ID
    0x00181008: "K",  # Gantry ID
    0x00181009: "K",  # Unique Device Identifier
    0x0018100A: "K",  # UDI Sequence
    0x0018100B: "K",  # Manufacturer's Device Class UID
    0x00181200: "K",  # Date of Last Calibration
    0x00181201: "K",  # Time of Last Calibration
    0x00181202: "K",  # DateTime of Last Calibration
    0x00181203: "K",  # Calibration DateTime
    0x00181204: "K",  # Date of Manufacture
    0x00181205: "K",  # Date of Installation
    0x00185011: "K",  # Transducer Identification Sequence
    0x0018700A: "K",  # Detector ID
    0x0018700C: "K",  # Date of Last Detector Calibration
    0x0018700E: "K",  # Time of Last Detector Calibration
    0x00189367: "K",  # X-Ray Source ID
    0x00189371: "K",  # X-Ray Detector ID
    0x00189373: "K",  # X-Ray Detector Label
    0x00203401: "K",  # Modifying Device ID
    0x00321020: "K",  # Scheduled Study Location
    0x00321021: "C",  # Scheduled Study Location AE Title
    0x00400001: "C",  # Scheduled Station AE Title
    0x00400010: "K",  # Scheduled Station Name
    0x00400011: "K",  # Scheduled Procedure Step Location
    0x00400241: "C",  # Performed Station AE Title
    0x00400242: "K",  # Performed Station Name
    0x00404025: "K",  # Scheduled Station Name Code Sequence
    0x00404027: "K",  # Scheduled Station Geographic Location Code Sequence
    0x00404028: "K",  # Performed Station Name Code Sequence
    0x00404030: "K",  # Performed Station Geographic Location Code Sequence
    0x00500020: "K",  # Device Description
    0x0072005E: "C",  # Selector AE Value
    0x00741234: "C",  # Receiving AE
    0x00741236: "C",  # Requesting AE
    0x04000563: "K",  # Modifying System
    0x21000070: "C",  # Originator
    0x21000140: "C",  # Destination AE
    0x30080105: "K",  # Source Serial Number
    0x300A00B2: "K",  # Treatment Machine Name
    0x300A0216: "K",  # Source Manufacturer
    0x300C0127: "K",  # Beam Hold Transition DateTime
    0x3010002D: "K",  # Device Label
    0x30100043: "K",  # Manufacturer's Device Identifier
}

# Clean Descriptors Option (PS3.15 E.3).
CLEAN_DESCRIPTORS: dict[int, str] = {
    0x00081030: "C",  # Study Description
    0x0008103E: "C",  # Series Description
    0x00081080: "C",  # Admitting Diagnoses Description
    0x00081084: "C",  # Admitting Diagnoses Code Sequence
    0x00081088: "C",  # Pyramid Description
    0x00082111: "C",  # Derivation Description
    0x00084000: "C",  # Identifying Comments
    0x00102000: "C",  # Medical Alerts
    0x00102110: "C",  # Allergies
    0x00102180: "C",  # Occupation
    0x001021B0: "C",  # Additional Patient History
    0x00104000: "C",  # Patient Comments
    0x00120051: "C",  # Clinical Trial Time Point Description
    0x00120072: "C",  # Clinical Trial Series Description
    0x0016002B: "C",  # Maker Note
    0x0016004B: "C",  # Device Setting Description
    0x00180010: "C",  # Contrast/Bolus Agent
    0x00181030: "C",  # Protocol Name
    0x001811BB: "C",  # Acquisition Field Of View Label
    0x00181400: "C",  # Acquisition Device Processing Description
    0x00184000: "C",  # Acquisition Comments
    0x00189185: "C",  # Respiratory Motion Compensation Technique Description
    0x0018937B: "C",  # Multi-energy Acquisition Description
    0x0018937F: "C",  # Decomposition Description
    0x00189424: "C",  # Acquisition Protocol Description
    0x00189937: "C",  # Requested Series Description
    0x0018A003: "C",  # Contribution Description
    0x00200027: "C",  # Pyramid Label
    0x00204000: "C",  # Image Comments
    0x00209158: "C",  # Frame Comments
    0x00321030: "C",  # Reason for Study
    0x00321060: "C",  # Requested Procedure Description
    0x00321066: "C",  # Reason for Visit
    0x00321067: "C",  # Reason for Visit Code Sequence
    0x00321070: "C",  # Requested Contrast Agent
    0x00324000: "C",  # Study Comments
    0x00380040: "C",  # Discharge Diagnosis Description
    0x00380062: "C",  # Service Episode Description
    0x00380500: "C",  # Patient State
    0x00384000: "C",  # Visit Comments
    0x003A0329: "C",  # Waveform Filter Description
    0x003A032B: "C",  # Filter Lookup Table Description
    0x00400007: "C",  # Scheduled Procedure Step Description
    0x00400254: "C",  # Performed Procedure Step Description
    0x00400275: "C",  # Request Attributes Sequence
    0x00400280: "C",  # Comments on the Performed Procedure Step
    0x00400310: "C",  # Comments on Radiation Dose
    0x0040051A: "C",  # Container Description
    0x00400600: "C",  # Specimen Short Description
    0x00400602: "C",  # Specimen Detailed Description
    0x00401002: "C",  # Reason for the Requested Procedure
    0x0040100A: "C",  # Reason for Requested Procedure Code Sequence
    0x00401400: "C",  # Requested Procedure Comments
    0x00402001: "C",  # Reason for the Imaging Service Request
    0x00402400: "C",  # Imaging Service Request Comments
    0x00500021: "C",  # Long Device Description
    0x006A0005: "C",  # Annotation Group Label
    0x006A0006: "C",  # Annotation Group Description
    0x00720066: "C",  # Selector LO Value
    0x00720068: "C",  # Selector LT Value
    0x0072006C: "C",  # Selector SH Value
    0x0072006E: "C",  # Selector ST Value
    0x00720070: "C",  # Selector UT Value
    0x04000565: "C",  # Reason for the Attribute Modification
    0x22000002: "C",  # Label Text
    0x30020121: "C",  # Position Acquisition Template Name
    0x30020123: "C",  # Position Acquisition Template Description
    0x30060002: "C",  # Structure Set Label
    0x30060004: "C",  # Structure Set Name
    0x30060006: "C",  # Structure Set Description
    0x30060026: "C",  # ROI Name
    0x30060028: "C",  # ROI Description
    0x30060038: "C",  # ROI Generation Description
    0x30060085: "C",  # ROI Observation Label
    0x30060088: "C",  # ROI Observation Description
    0x300A0002: "C",  # RT Plan Label
    0x300A0003: "C",  # RT Plan Name
    0x300A0004: "C",  # RT Plan Description
    0x300A000B: "C",  # Treatment Sites
    0x300A000E: "C",  # Prescription Description
    0x300A0016: "C",  # Dose Reference Description
    0x300A0072: "C",  # Fraction Group Description
    0x300A00C3: "C",  # Beam Description
    0x300A00DD: "C",  # Bolus Description
    0x300A0196: "C",  # Fixation Device Description
    0x300A01A6: "C",  # Shielding Device Description
    0x300A01B2: "C",  # Setup Technique Description
    0x300A02EB: "C",  # Compensator Description
    0x300A0608: "C",  # Treatment Position Group Label
    0x300A0619: "C",  # Radiation Dose Identification Label
    0x300A0623: "C",  # Radiation Dose In-Vivo Measurement Label
    0x300A062A: "C",  # RT Tolerance Set Label
    0x300A0676: "C",  # Equipment Frame of Reference Description
    0x300A067C: "C",  # Radiation Generation Mode Label
    0x300A067D: "C",  # Radiation Generation Mode Description
    0x300A0734: "C",  # Treatment Tolerance Violation Description
    0x300A0742: "C",  # Interlock Description
    0x300A0783: "C",  # Interlock Origin Description
    0x300A078E: "C",  # Patient Treatment Preparation Procedure Parameter Description
    0x300A0792: "C",  # Patient Treatment Preparation Method Description
    0x300A0794: "C",  # Patient Setup Photo Description
    0x300A079A: "C",  # Displacement Reference Label
    0x300C0113: "C",  # Reason for Omission Description
    0x3010000F: "C",  # Conceptual Volume Combination Description
    0x30100017: "C",  # Conceptual Volume Description
    0x30100033: "C",  # User Content Label
    0x30100034: "C",  # User Content Long Label
    0x30100035: "C",  # Entity Label
    0x30100036: "C",  # Entity Name
    0x30100037: "C",  # Entity Description
    0x30100038: "C",  # Entity Long Label
    0x30100054: "C",  # RT Prescription Label
    0x30100056: "C",  # RT Treatment Approach Label
    0x3010005A: "C",  # RT Physician Intent Narrative
    0x3010005C: "C",  # Reason for Superseding
    0x30100061: "C",  # Prior Treatment Dose Description
    0x30100077: "C",  # Treatment Site
    0x3010007A: "C",  # Treatment Technique Notes
    0x3010007B: "C",  # Prescription Notes
    0x3010007F: "C",  # Fractionation Notes
    0x30100081: "C",  # Prescription Notes Sequence
    0x4008010B: "C",  # Interpretation Text
    0x40080115: "C",  # Interpretation Diagnosis Description
    0x40080300: "C",  # Impressions
    0x40084000: "C",  # Results Comments
}
