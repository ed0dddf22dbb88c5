"""FastAPI app: DICOMweb and the REST admin API."""
