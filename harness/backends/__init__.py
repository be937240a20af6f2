"""Inference backends: they call a model. Built-ins: `fake` (scripted, for tests and dry runs), `hf` (local
transformers, optionally with an adapter; default_llm.py makes the embedded SmolLM2 into a model folder) and
`openai` (OpenAI, Azure OpenAI and any OpenAI-compatible server). embeddings.py holds the text embedders retrieval
and judges use."""
