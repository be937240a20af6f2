"""harness: measure few-shot prompting, RAG and fine-tuning on one task and decide which pays off.

Importing this package stays light: heavy libraries (torch, transformers, openai, langchain,
ragas, streamlit) are imported only where they are used.
"""

__version__ = "0.1.0"

from harness.errors import HarnessError  # noqa: E402

__all__ = ["HarnessError", "__version__"]
