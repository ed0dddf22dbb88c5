"""De-identification by the PS3.15 Annex E Basic Application Level Confidentiality Profile.

profile.py (Table E.1-1 and the option columns), keyed.py (UIDs, pseudonyms, date offset),
clean.py (action C and the date shift), safe_private.py (private attributes kept),
transform.py (one instance, every element).
"""
