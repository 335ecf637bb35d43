"""The link: the agent that keeps a provincial system and the national portal in sync.

It pulls citizen-side changes from the national portal's feed
(``LayThayDoiHoSo``) into the provincial database, and pushes the
provincial outbox (``DongBoHoSoMC`` for dossiers, ``CapNhatTienDoHoSoMC``
for steps) to the national portal, acknowledging a row only when the
national portal answered ``error_code`` "0". Its state (the cursor, the
outbox rows) lives in the provincial database, so a killed agent resumes
where it was. ``python -m rehearsal.portal.link`` runs it; the provincial
process starts and supervises it (`rehearsal.portal.supervisor`).
"""
