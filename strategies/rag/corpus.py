"""The corpus a RAG strategy retrieves from, read into langchain Documents.

Accepted: a table (.jsonl, .csv, .parquet) with id, title and text columns; a .txt, .md or .pdf file; or a folder
of such files (searched recursively, in name order). PDFs are read page by page with langchain's PyPDFLoader.
Every Document carries `doc_id` (the row id, or the file's path relative to the suite) so each chunk traces back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.errors import DataError, require
from harness.home import tree_fingerprint
from harness.suite.data import file_sha256, is_missing, read_records
from harness.suite.schema import StrictModel

TABLE_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
PDF_SUFFIXES = {".pdf"}
FILE_SUFFIXES = TEXT_SUFFIXES | PDF_SUFFIXES


class CorpusFields(StrictModel):
    id: str = Field("id", description="Column with the document id (tables only).")
    title: str | None = Field("title", description="Column with the title (optional; tables only).")
    text: str = Field("text", description="Column with the document text (tables only).")


def resolve(paths: list[str], base: Path) -> list[Path]:
    return [(base / p).resolve() for p in paths]


def missing_problems(paths: list[str], base: Path) -> list[str]:
    from harness.suite.load import outside_suite_folder

    problems = []
    for rel, path in zip(paths, resolve(paths, base), strict=True):
        outside = outside_suite_folder(rel, base)
        if outside:
            problems.append(f"corpus {outside}")
        elif not path.exists():
            problems.append(
                f"corpus '{rel}' not found ({path}). Fix: check the path; it is relative to the suite file."
            )
        elif path.is_dir() and not any(p.suffix.lower() in FILE_SUFFIXES | TABLE_SUFFIXES for p in path.rglob("*")):
            problems.append(
                f"corpus folder '{rel}' holds no .txt, .md, .pdf, .jsonl or .csv files. Fix: point at the documents."
            )
        elif path.is_file() and path.suffix.lower() not in FILE_SUFFIXES | TABLE_SUFFIXES:
            problems.append(
                f"corpus '{rel}': unsupported file type '{path.suffix}'. Fix: use .jsonl/.csv/.parquet (id, title, text), "
                ".txt, .md or .pdf, or a folder of them."
            )
    return problems


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the corpus content (files hashed, folders hashed file by file)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.name).encode())
        digest.update((file_sha256(path) if path.is_file() else tree_fingerprint(path)).encode())
    return digest.hexdigest()


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES | TABLE_SUFFIXES)


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _table(path: Path, fields: CorpusFields, base: Path) -> list[Any]:
    from langchain_core.documents import Document

    docs = []
    for row in read_records(path):
        line = row.get("__line__", "?")
        missing = [f for f in (fields.id, fields.text) if f not in row]
        if missing:
            raise DataError(
                f"{path}:{line}: no '{missing[0]}' field (columns: {', '.join(k for k in row if k != '__line__')}). "
                f"Fix: add it, or name the right column under the rag strategy's `fields`."
            )
        if is_missing(row[fields.text]) or not str(row[fields.text]).strip():
            continue  # an empty document cannot be retrieved; counted by the caller as skipped
        title = row.get(fields.title) if fields.title else None
        docs.append(
            Document(
                page_content=str(row[fields.text]),
                metadata={
                    "doc_id": str(row[fields.id]),
                    "title": "" if is_missing(title) else str(title),
                    "source": _rel(path, base),
                    "line": line,
                },
            )
        )
    return docs


def _text_file(path: Path, base: Path) -> list[Any]:
    from langchain_community.document_loaders import TextLoader

    try:
        docs = TextLoader(str(path), encoding="utf-8").load()
    except Exception as exc:  # langchain wraps the decode error in a RuntimeError
        raise DataError(f"{path}: cannot read as UTF-8 text ({exc}). Fix: re-save the file as UTF-8.") from None
    rel = _rel(path, base)
    for doc in docs:
        doc.metadata = {"doc_id": rel, "title": path.stem, "source": rel}
    return [d for d in docs if d.page_content.strip()]


def _pdf(path: Path, base: Path) -> list[Any]:
    require("pypdf", extra="rag", purpose="reading PDF corpora")
    from langchain_community.document_loaders import PyPDFLoader

    try:
        pages = PyPDFLoader(str(path)).load()
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read the PDF ({type(exc).__name__}: {exc}). Fix: check the file opens."
        ) from None
    rel = _rel(path, base)
    for page in pages:
        number = int(page.metadata.get("page", 0)) + 1
        page.metadata = {"doc_id": rel, "title": path.stem, "source": rel, "page": number}
    return [p for p in pages if p.page_content.strip()]


def load_documents(paths: list[Path], fields: CorpusFields, base: Path) -> list[Any]:
    """All documents of the corpus; raises DataError naming the file when the corpus is empty or malformed."""
    require("langchain_community", extra="rag", purpose="the rag strategy")
    base = base.resolve()
    docs: list[Any] = []
    for root in paths:
        for path in _files(root):
            suffix = path.suffix.lower()
            if suffix in TABLE_SUFFIXES:
                docs += _table(path, fields, base)
            elif suffix in PDF_SUFFIXES:
                docs += _pdf(path, base)
            else:
                docs += _text_file(path, base)
    if not docs:
        raise DataError(
            f"corpus {', '.join(str(p) for p in paths)}: no document with any text. "
            "Fix: add documents, or point `corpus` at the right files."
        )
    seen: dict[tuple[str, Any], str] = {}
    for doc in docs:
        key = (doc.metadata["doc_id"], doc.metadata.get("page"))
        if key in seen:
            raise DataError(
                f"{doc.metadata['source']}:{doc.metadata.get('line', '?')}: duplicate document id '{key[0]}' "
                f"(also in {seen[key]}). Fix: give each document its own id."
            )
        seen[key] = f"{doc.metadata['source']}:{doc.metadata.get('line', '?')}"
    return docs
