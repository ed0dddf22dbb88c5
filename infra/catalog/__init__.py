"""The catalog: patient/study/series/instance read models that answer C-FIND, QIDO and WADO."""
