"""Scorers judge one answer: the interface (base.py), text metrics (text.py), JSON fields (json_match.py), retrieval
(retrieval.py), ragas metrics judged by a model (ragas.py, through the judge plumbing in judge.py)."""
