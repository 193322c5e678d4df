"""Real PDFs for the résumé suites, written with fpdf2 (and pypdf for an encrypted one)."""

from __future__ import annotations

import io
import os

from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

MIB = 1024 * 1024

RESUME = """Jane Example
janedoe.dev | github.com/jane-example | linkedin.com/in/jane-example | jane@example.com

Summary
Backend engineer who builds data platforms and ships product with small teams.

Experience
Staff Engineer, Acme Data - Jan 2019 - Present
Built the ingestion platform in Python and Go on Kubernetes; PostgreSQL and Kafka at scale.
Led the migration to Kubernetes. Python services, Python tooling, Terraform.
Software Engineer, Widgets Inc - 03/2014 - 12/2018
Web applications with React and TypeScript; product management for the billing team.

Education
BSc Computer Science, 2010 - 2014

Skills
Python, Go, Kubernetes, PostgreSQL, Terraform, Machine Learning, B2B Sales
"""


def _text_pdf(text: str) -> FPDF:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for line in text.splitlines():
        pdf.multi_cell(0, 6, line or " ", new_x="LMARGIN", new_y="NEXT")
    return pdf


def resume_pdf(text: str = RESUME, *, size: int = 0) -> bytes:
    """A text PDF; with `size`, padded to about that many bytes with an incompressible image."""
    pdf = _text_pdf(text)
    if size:
        base = len(bytes(_text_pdf(text).output()))
        width = 1024
        height = max((size - base - 4096) // (3 * width), 1)
        noise = Image.frombytes("RGB", (width, height), os.urandom(3 * width * height))
        pdf.add_page()
        pdf.image(noise, x=10, y=10, w=100)
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    """A page with a drawing and no text (what a scan looks like to a text extractor)."""
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(resume_pdf())))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    """A PDF header with garbage where the objects and cross-reference table should be."""
    good = resume_pdf()
    return good[:9] + os.urandom(2000) + b"\n%%EOF\n"
