"""The results room: the ledger, reconciliation with the systems' records, latency, the summary,
judging the gates, baselines and JUnit. Plain Python: no pandas, no matplotlib, no gevent."""
