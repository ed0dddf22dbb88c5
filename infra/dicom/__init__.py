"""DICOM data toolkit: headers, their DICOM JSON, Part-10 files, status codes."""
